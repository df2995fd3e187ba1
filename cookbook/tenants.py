"""Recipe: tenants kept apart.

Shows: one engine serving two tenants (namespaces). An answer stored for tenant "acme" is
reused for acme's repeats and paraphrases and never served to tenant "globex", who gets
its own generated answer; clearing one tenant leaves the other's answers in place.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 50 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/tenants.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from langchain_semantic_reuse import ChatSemanticReuse
from semantic_reuse import HandlerConfig, VLLMClient


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        # One engine (one client) shared by both tenants' model objects.
        client = VLLMClient(handler_config=HandlerConfig(cache={"qdrant_path": Path(folder)}))
        acme = ChatSemanticReuse(client=client, namespace="acme", max_tokens=40)
        globex = ChatSemanticReuse(client=client, namespace="globex", max_tokens=40)
        try:
            for tenant, model, question in [
                ("acme", acme, "How do I reset my password?"),
                ("acme", acme, "How can I reset my password?"),
                ("globex", globex, "How do I reset my password?"),
                ("globex", globex, "How do I reset my password?"),
            ]:
                reply = model.invoke(question)
                kind = reply.response_metadata["reuse"]["kind"]
                print(f"{tenant:7} {question!r:32} -> {kind:8} {str(reply.content)[:40]!r}")
            # Forget one tenant (e.g. its documents changed): the other keeps its answers.
            client.clear_namespace("acme")
            for tenant, model in [("acme", acme), ("globex", globex)]:
                kind = model.invoke("How do I reset my password?").response_metadata["reuse"]
                print(f"after clearing acme: {tenant:7} -> {kind['kind']}")
        finally:
            client.close()


if __name__ == "__main__":
    main()
