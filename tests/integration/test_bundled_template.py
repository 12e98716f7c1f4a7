"""The bundled model's own chat template, read from its GGUF, against ragapp's rendering."""

from __future__ import annotations

from ragapp.backends.formats import FORMATS, choose_format, detect_family
from tests.unit.test_prompts import CONVERSATION


def test_chatml_matches_the_bundled_models_own_template() -> None:
    """Our ChatML rendering is byte-identical to SmolLM2's Jinja chat template."""
    from llama_cpp import Llama

    from ragapp.bundled import llm_gguf

    model = Llama(str(llm_gguf()), vocab_only=True, verbose=False)
    assert detect_family(model.metadata) == "chatml"
    own = choose_format("template", model.metadata)
    assert own.family == "template"
    assert FORMATS["chatml"].render(CONVERSATION) == own.render(CONVERSATION)
