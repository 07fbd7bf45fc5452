"""The local CPU runtime: a ComfyUI-compatible server that executes core image nodes with Pillow and numpy.

It speaks ComfyUI's HTTP and WebSocket protocol as recorded in the reference captures, so the inference
service drives it exactly like a real ComfyUI backend. It never imitates model nodes: anything it does not
implement is refused the way ComfyUI refuses an unknown node type.
"""
