"""The ComfyUI adapter: the only code of the project that knows ComfyUI's HTTP and WebSocket protocol."""
