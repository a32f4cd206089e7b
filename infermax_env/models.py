"""Transformer model specifications (HF-config style) and their derived sizes.

Arithmetic follows the Llama family with grouped-query attention: per layer Q and O projections of
``d * H * dh``, K and V projections of ``d * Hkv * dh`` each, and an MLP of ``3 * d * F`` (gated) or
``2 * d * F`` parameters. Weights and KV are 2 bytes per element (BF16) unless ``dtype_bytes`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer.

    ``head_dim`` defaults to ``hidden_size // num_heads``; ``num_kv_heads`` equal to ``num_heads`` means
    classic multi-head attention, fewer means GQA.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    gated_mlp: bool = True
    head_dim: int | None = None
    tied_embeddings: bool = False
    dtype_bytes: int = 2
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                     "vocab_size", "dtype_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelSpec {self.name!r}: {name} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelSpec {self.name!r}: num_heads={self.num_heads} is not a multiple of "
                f"num_kv_heads={self.num_kv_heads}")
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], name: str | None = None) -> "ModelSpec":
        """Build a spec from a Hugging Face ``config.json`` dict (Llama/Mistral/Qwen2 field names)."""
        required = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
        missing = [key for key in required if key not in config]
        if missing:
            raise ValueError(f"HF config is missing {missing}; it has {sorted(config)}")
        num_heads = int(config["num_attention_heads"])
        act = str(config.get("hidden_act", "silu"))
        return cls(
            name=name or str(config.get("_name_or_path") or config.get("model_type") or "custom"),
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=int(config["hidden_size"]),
            num_heads=num_heads,
            num_kv_heads=int(config.get("num_key_value_heads") or num_heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            gated_mlp=bool(config.get("gated_mlp", act in ("silu", "swiglu", "gelu_pytorch_tanh") or "glu" in act)),
            head_dim=int(config["head_dim"]) if config.get("head_dim") else None,
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def attention_params_per_layer(self) -> int:
        d = self.hidden_size
        return d * self.q_size + 2 * d * self.kv_size + self.q_size * d

    @property
    def mlp_params_per_layer(self) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def params_per_layer(self) -> int:
        """Projection and MLP parameters of one layer (norm weights are negligible and left out)."""
        return self.attention_params_per_layer + self.mlp_params_per_layer

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def num_params(self) -> int:
        """Total parameters: layers, input embedding and (unless tied) the LM head."""
        head = 0 if self.tied_embeddings else self.embedding_params
        return self.num_layers * self.params_per_layer + self.embedding_params + head

    @property
    def param_bytes(self) -> int:
        return self.num_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token occupies across all layers (K and V, GQA aware)."""
        return 2 * self.num_layers * self.kv_size * self.dtype_bytes

    @property
    def linear_flops_per_token(self) -> int:
        """FLOPs of all transformer-layer matmuls for one token (2 per parameter), attention excluded."""
        return 2 * self.num_layers * self.params_per_layer

    @property
    def lm_head_flops_per_sequence(self) -> int:
        return 2 * self.vocab_size * self.hidden_size

    def attention_flops(self, new_tokens: float, cached_tokens: float) -> float:
        """Attention-score and value FLOPs over all layers for ``new_tokens`` attending to the cache and
        causally to themselves: ``4 * H * dh * (n * p + n^2 / 2)`` per layer."""
        n, p = new_tokens, cached_tokens
        return 4.0 * self.num_layers * self.q_size * (n * p + n * n / 2.0)


_MODELS: Registry[ModelSpec] = Registry("model", ModelSpec)


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    return _MODELS.register(spec, overwrite=overwrite)


def get_model(name: str | ModelSpec) -> ModelSpec:
    """Look up a model by registry name (a :class:`ModelSpec` is returned unchanged)."""
    return _MODELS.get(name)


def list_models() -> list[str]:
    return _MODELS.names()


for _spec in (
    ModelSpec("llama-3-8b", 32, 4096, 32, 8, 14336, 128256),
    ModelSpec("llama-3-70b", 80, 8192, 64, 8, 28672, 128256),
    ModelSpec("llama-2-7b", 32, 4096, 32, 32, 11008, 32000),
    ModelSpec("llama-2-70b", 80, 8192, 64, 8, 28672, 32000),
    ModelSpec("mistral-7b", 32, 4096, 32, 8, 14336, 32000),
    ModelSpec("qwen-72b", 80, 8192, 64, 64, 24576, 152064),
    ModelSpec("phi-2", 32, 2560, 32, 32, 10240, 51200, gated_mlp=False),
):
    register_model(_spec)
