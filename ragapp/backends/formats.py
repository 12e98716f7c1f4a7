"""The chat format each model family expects.

A format renders a list of LangChain messages into the exact string the model was trained
on, plus the stop strings that end its turn. The BOS token is left out: llama.cpp's
tokenizer adds it when the model asks for it, and a second one hurts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import PromptValue

Turn = tuple[str, str]  # (role, content) with role in system/user/assistant


def _turns(messages: Sequence[BaseMessage]) -> list[Turn]:
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    turns = []
    for m in messages:
        role = next((r for cls, r in roles.items() if isinstance(m, cls)), None)
        if role is None:
            raise ValueError(f"unsupported message type in prompt: {type(m).__name__}")
        turns.append((role, str(m.content)))
    return turns


@dataclass(frozen=True)
class PromptFormat:
    """A model family's chat format: how to render turns, and where generation stops."""

    family: str
    render_turns: Callable[[list[Turn]], str]
    stop: list[str] = field(default_factory=list)

    def render(self, prompt: PromptValue | Sequence[BaseMessage]) -> str:
        messages = prompt.to_messages() if isinstance(prompt, PromptValue) else prompt
        return self.render_turns(_turns(messages))


def _split_system(turns: list[Turn]) -> tuple[str, list[Turn]]:
    system = "\n\n".join(c for r, c in turns if r == "system")
    return system, [(r, c) for r, c in turns if r != "system"]


def _chatml(turns: list[Turn]) -> str:
    body = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return body + "<|im_start|>assistant\n"


def _llama3(turns: list[Turn]) -> str:
    body = "".join(
        f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
        for role, content in turns
    )
    return body + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _inst_pairs(turns: list[Turn], first_user_prefix: str, end_of_answer: str) -> str:
    """[INST] blocks shared by LLaMA-2 and Mistral: each user turn wrapped, answers after."""
    out = []
    for i, (role, content) in enumerate(turns):
        if role == "user":
            out.append(f"[INST] {first_user_prefix + content if i == 0 else content} [/INST]")
        else:
            out.append(f" {content}{end_of_answer}")
    return "".join(out)


def _llama2(turns: list[Turn]) -> str:
    system, rest = _split_system(turns)
    prefix = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
    return _inst_pairs(rest, prefix, " </s><s>")


def _mistral(turns: list[Turn]) -> str:
    system, rest = _split_system(turns)
    return _inst_pairs(rest, f"{system}\n\n" if system else "", "</s>")


def _gemma(turns: list[Turn]) -> str:
    system, rest = _split_system(turns)
    out = []
    for i, (role, content) in enumerate(rest):
        if i == 0 and role == "user" and system:
            content = f"{system}\n\n{content}"
        out.append(
            f"<start_of_turn>{'model' if role == 'assistant' else 'user'}\n{content}<end_of_turn>\n"
        )
    return "".join(out) + "<start_of_turn>model\n"


def _phi3(turns: list[Turn]) -> str:
    body = "".join(f"<|{role}|>\n{content}<|end|>\n" for role, content in turns)
    return body + "<|assistant|>\n"


FORMATS: dict[str, PromptFormat] = {
    "chatml": PromptFormat("chatml", _chatml, ["<|im_end|>", "<|im_start|>"]),
    "llama3": PromptFormat("llama3", _llama3, ["<|eot_id|>", "<|end_of_text|>"]),
    "llama2": PromptFormat("llama2", _llama2, ["</s>", "[INST]"]),
    "mistral": PromptFormat("mistral", _mistral, ["</s>", "[INST]"]),
    "gemma": PromptFormat("gemma", _gemma, ["<end_of_turn>", "<start_of_turn>"]),
    "phi3": PromptFormat("phi3", _phi3, ["<|end|>", "<|endoftext|>", "<|user|>"]),
}

# For servers that apply their model's own chat template (ChatOllama, /v1/chat/completions):
# never sent, only counted, so it is ChatML-shaped to count the template's tokens too.
SERVER_FORMAT = PromptFormat("server", _chatml, [])

# Markers in a GGUF chat template (tokenizer.chat_template), most specific first.
_TEMPLATE_MARKERS: list[tuple[str, tuple[str, ...]]] = [
    ("llama3", ("<|start_header_id|>",)),
    ("chatml", ("<|im_start|>",)),
    ("gemma", ("<start_of_turn>",)),
    ("phi3", ("<|user|>", "<|end|>")),
    ("llama2", ("<<SYS>>",)),
    ("mistral", ("[INST]",)),
]
# Fallback when a GGUF carries no template: its architecture / name.
_NAME_HINTS: list[tuple[str, str]] = [
    ("llama-3", "llama3"),
    ("llama3", "llama3"),
    ("llama-2", "llama2"),
    ("llama2", "llama2"),
    ("qwen", "chatml"),
    ("smollm", "chatml"),
    ("gemma", "gemma"),
    ("mistral", "mistral"),
    ("phi3", "phi3"),
    ("phi-3", "phi3"),
]


def detect_family(metadata: dict[str, Any]) -> str | None:
    """The family named by a GGUF's metadata, or None when it fits none we know."""
    template = str(metadata.get("tokenizer.chat_template", ""))
    for family, markers in _TEMPLATE_MARKERS:
        if all(m in template for m in markers):
            return family
    name = " ".join(
        str(metadata.get(k, ""))
        for k in ("general.name", "general.architecture", "general.basename")
    ).lower()
    return next((family for hint, family in _NAME_HINTS if hint in name), None)


def template_format(metadata: dict[str, Any]) -> PromptFormat | None:
    """A format that renders the GGUF's own Jinja chat template, for unknown families."""
    template = metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(
        template=str(template),
        eos_token=str(metadata.get("tokenizer.ggml.eos_token", "")),
        bos_token="",  # added by the tokenizer
        add_generation_prompt=True,
    )

    def render(turns: list[Turn]) -> str:
        messages: Any = [{"role": r, "content": c} for r, c in turns]
        return formatter(messages=messages).prompt

    eos = metadata.get("tokenizer.ggml.eos_token")
    return PromptFormat("template", render, [str(eos)] if eos else [])


def choose_format(requested: str, metadata: dict[str, Any]) -> PromptFormat:
    """The prompt format to use: the one asked for, else detected, else the GGUF's template."""
    if requested not in ("auto", "template"):
        return FORMATS[requested]
    if requested == "auto":
        family = detect_family(metadata)
        if family is not None:
            return FORMATS[family]
    fmt = template_format(metadata)
    # With neither a known family nor a template, ChatML is the most widely trained format.
    return fmt if fmt is not None else FORMATS["chatml"]
