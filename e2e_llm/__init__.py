"""`make e2e-llm`: alex against a real model (llama.cpp's llama-server, Qwen2.5-Coder), fully offline."""
