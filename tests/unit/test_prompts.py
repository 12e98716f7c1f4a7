"""Each model family's prompt, rendered exactly, with its stop strings."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from ragapp.backends.formats import FORMATS, choose_format, detect_family
from ragapp.query.prompts import ANSWER_PROMPT, REFUSAL, format_context
from ragapp.types import Source

CONVERSATION = [
    SystemMessage("SYS"),
    HumanMessage("Q1"),
    AIMessage("A1"),
    HumanMessage("Q2"),
]

EXPECTED = {
    "chatml": (
        "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama2": "[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]",
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": (
        "<start_of_turn>user\nSYS\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n"
    ),
    "mistral": "[INST] SYS\n\nQ1 [/INST] A1</s>[INST] Q2 [/INST]",
    "phi3": (
        "<|system|>\nSYS<|end|>\n<|user|>\nQ1<|end|>\n<|assistant|>\nA1<|end|>\n"
        "<|user|>\nQ2<|end|>\n<|assistant|>\n"
    ),
}

STOPS = {
    "chatml": ["<|im_end|>", "<|im_start|>"],
    "llama2": ["</s>", "[INST]"],
    "llama3": ["<|eot_id|>", "<|end_of_text|>"],
    "gemma": ["<end_of_turn>", "<start_of_turn>"],
    "mistral": ["</s>", "[INST]"],
    "phi3": ["<|end|>", "<|endoftext|>", "<|user|>"],
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_family_renders_exact_prompt(family: str) -> None:
    fmt = FORMATS[family]
    assert fmt.render(CONVERSATION) == EXPECTED[family]
    assert fmt.stop == STOPS[family]


def test_llama2_single_turn_matches_the_guide() -> None:
    prompt = ANSWER_PROMPT.invoke({"context": "[1] (a.txt)\nfact", "question": "What?"})
    rendered = FORMATS["llama2"].render(prompt)
    assert rendered.startswith("[INST] <<SYS>>\nYou answer questions using only")
    assert rendered.endswith("<</SYS>>\n\nContext:\n[1] (a.txt)\nfact\n\nQuestion: What? [/INST]")


def test_prompt_numbers_context_asks_for_citations_and_refusal() -> None:
    sources = [Source("/d/a.pdf", 2, 0.9, "Fee is 42."), Source("/d/b.md", None, 0.8, "Other.")]
    context = format_context(sources)
    assert context == "[1] (a.pdf, page 2)\nFee is 42.\n\n[2] (b.md)\nOther."
    system, user = ANSWER_PROMPT.invoke({"context": context, "question": "q"}).to_messages()
    assert "square brackets" in system.content and REFUSAL in system.content
    assert user.content == f"Context:\n{context}\n\nQuestion: q"


@pytest.mark.parametrize(
    ("metadata", "family"),
    [
        ({"tokenizer.chat_template": "{{'<|im_start|>' + message['role']}}"}, "chatml"),
        ({"tokenizer.chat_template": "<|start_header_id|>{{ role }}<|end_header_id|>"}, "llama3"),
        ({"tokenizer.chat_template": "<start_of_turn>user"}, "gemma"),
        ({"tokenizer.chat_template": "[INST] <<SYS>>\\n{{ system }}"}, "llama2"),
        ({"tokenizer.chat_template": "{{ '[INST] ' + content + ' [/INST]' }}"}, "mistral"),
        ({"tokenizer.chat_template": "<|user|>\n{{ content }}<|end|>"}, "phi3"),
        ({"general.name": "Qwen2.5 0.5B Instruct"}, "chatml"),
        ({"general.basename": "Meta-Llama-3"}, "llama3"),
        ({"general.architecture": "gpt2"}, None),
    ],
)
def test_detect_family(metadata: dict[str, str], family: str | None) -> None:
    assert detect_family(metadata) == family


def test_unknown_family_falls_back_to_the_ggufs_own_template() -> None:
    template = (
        "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<<assistant>>{% endif %}"
    )
    fmt = choose_format(
        "auto", {"tokenizer.chat_template": template, "tokenizer.ggml.eos_token": "<eos>"}
    )
    assert fmt.family == "template"
    assert (
        fmt.render([SystemMessage("S"), HumanMessage("Q")])
        == "<<system>>S\n<<user>>Q\n<<assistant>>"
    )
    assert fmt.stop == ["<eos>"]


def test_explicit_format_overrides_detection() -> None:
    fmt = choose_format("gemma", {"tokenizer.chat_template": "<|im_start|>"})
    assert fmt.family == "gemma"
