"""Models behind reuse for framework integrations: an in-process `EnhancedAsyncLLM`
(`VLLMClient`) or any OpenAI-compatible endpoint (`OpenAICompatibleClient`)."""
