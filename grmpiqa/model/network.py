"""The GRMP-IQA network on an open_clip CLIP (docs/method.md, "Model").

``QualityModel`` wraps the backbone without copying it: visual prompts are
inserted by running the backbone's own blocks, and the CoOp text context is
fed through the backbone's own text transformer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from grmpiqa.config import LabelScale, ModelConfig, PreprocessConfig
from grmpiqa.errors import ConfigError
from grmpiqa.model.maths import clip_logits, quality_from_logits


class VisualPrompts(nn.Module):
    """VPT-deep prompts: one set before block 0, a fresh set before each of blocks 1..depth."""

    def __init__(self, tokens: int, depth: int, width: int, patch_size: tuple[int, int],
                 dropout: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.depth = depth
        self.prompt_embeddings = nn.Parameter(torch.zeros(1, tokens, width))
        self.deep_prompt_embeddings = nn.Parameter(torch.zeros(depth, tokens, width))
        self.prompt_proj = nn.Linear(width, width)
        self.prompt_norm = nn.LayerNorm(width, eps=1e-6)
        self.prompt_dropout = nn.Dropout(dropout)
        bound = math.sqrt(6.0 / float(3 * patch_size[0] * patch_size[1] + width))
        nn.init.uniform_(self.prompt_embeddings, -bound, bound)
        nn.init.uniform_(self.deep_prompt_embeddings, -bound, bound)
        nn.init.kaiming_normal_(self.prompt_proj.weight, a=0, mode="fan_out")

    def projected(self) -> torch.Tensor:
        """All prompt sets through the shared ``prompt_proj``: shape (1 + depth, tokens, width)."""
        return self.prompt_proj(torch.cat([self.prompt_embeddings, self.deep_prompt_embeddings]))


class TextContext(nn.Module):
    """CoOp: ``[SOS] c1..cn <class> . [EOS]`` with n learned vectors shared by both classes."""

    def __init__(self, tokenizer: Any, width: int, n_ctx: int,
                 class_names: tuple[str, str]) -> None:
        super().__init__()
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(torch.empty(n_ctx, width))
        nn.init.normal_(self.ctx, std=0.02)
        placeholder = " ".join(["X"] * n_ctx)
        ids = tokenizer([f"{placeholder} {name}." for name in class_names])
        self.register_buffer("token_ids", ids, persistent=False)

    def embeddings(self, token_embedding: nn.Embedding) -> torch.Tensor:
        fixed = token_embedding(self.token_ids)
        ctx = self.ctx.to(fixed.dtype).unsqueeze(0).expand(fixed.shape[0], -1, -1)
        return torch.cat([fixed[:, :1], ctx, fixed[:, 1 + self.n_ctx:]], dim=1)


class QualityModel(nn.Module):
    """CLIP + GRMP-IQA prompts; ``forward`` gives the two class logits, ``predict`` the score."""

    def __init__(self, clip: nn.Module, tokenizer: Any, config: ModelConfig,
                 preprocess: PreprocessConfig, *, label: LabelScale | None = None,
                 info: dict[str, Any] | None = None, backbone_spec: Any = None) -> None:
        super().__init__()
        self.backbone_spec = backbone_spec
        self.precision = "fp32"  # set by acceleration.prepare_for_inference
        self.clip = clip
        self.tokenizer = tokenizer
        self.config = config
        self.preprocess = preprocess
        self.label = label
        self.info: dict[str, Any] = dict(info or {})
        visual = clip.visual
        self.visual_prompts: VisualPrompts | None = None
        self.text_context: TextContext | None = None
        if config.kind == "grmp":
            layers = len(visual.transformer.resblocks)
            if config.visual_prompt_depth > layers - 1:
                raise ConfigError(
                    f"visual_prompt_depth {config.visual_prompt_depth} needs a backbone with at "
                    f"least {config.visual_prompt_depth + 1} vision blocks; it has {layers}"
                )
            if config.visual_prompt_tokens > 0:
                patch = visual.conv1.kernel_size
                self.visual_prompts = VisualPrompts(
                    config.visual_prompt_tokens, config.visual_prompt_depth,
                    visual.transformer.width, (int(patch[0]), int(patch[1])),
                    config.prompt_dropout,
                )
            self.text_context = TextContext(
                tokenizer, clip.ln_final.weight.shape[0], config.text_context_tokens,
                config.class_names,
            )
        else:
            prompts = [text for pair in config.zeroshot_prompts for text in pair]
            self.register_buffer("zeroshot_ids", tokenizer(prompts), persistent=False)
        self.register_buffer("pixel_mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(preprocess.std).view(1, 3, 1, 1),
                             persistent=False)
        self._text_cache: torch.Tensor | None = None
        self.text_encodings = 0

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def learned_state(self) -> dict[str, torch.Tensor]:
        """The GRMP parameters that are not part of the backbone (prompts and context)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}

    def train(self, mode: bool = True) -> QualityModel:
        if mode != self.training:
            self._text_cache = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._text_cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ image
    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (0..255) or float RGB (0..1) in NCHW to the weights' normalised input."""
        x = pixels.to(self.device, non_blocking=True)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        return (x - self.pixel_mean) / self.pixel_std

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Image features (unnormalised) with the visual prompts inserted after the CLS token."""
        if self.visual_prompts is None:
            return self.clip.visual(x)
        depth = len(self.clip.visual.transformer.resblocks)
        return self.image_tail(self.image_prefix(x, depth), depth)

    def image_prefix(self, x: torch.Tensor, stop: int, block_fn: Any = None) -> torch.Tensor:
        """Tokens after blocks ``0 .. stop-1`` (prompts inserted); :meth:`image_tail` goes on.

        Training caches this part when it is frozen: it depends on the crop alone
        (and, in train mode, on the prompt dropout of those layers).
        """
        visual = self.clip.visual
        x = visual.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        prompts = self._layer_prompts(x, 0, stop)
        x = torch.cat([x[:, :1], prompts(0), x[:, 1:]], dim=1)
        return self._run_blocks(x, 0, stop, prompts, block_fn)

    def image_tail(self, x: torch.Tensor, start: int,
                   block_fn: Any = None) -> torch.Tensor:
        """Features from the tokens :meth:`image_prefix` gave for ``stop = start``.

        ``block_fn(block, x, last)``, if given, runs each block (training runs the
        last one for the CLS token only); the default calls the block itself.
        """
        depth = len(self.clip.visual.transformer.resblocks)
        x = self._run_blocks(x, start, depth, self._layer_prompts(x, start, depth), block_fn)
        with torch.autocast(x.device.type, enabled=False):  # the head costs nothing in fp32
            pooled = self.clip.visual.ln_post(self.visual_prompts.prompt_norm(x[:, 0].float()))
            return pooled @ self.clip.visual.proj

    def _layer_prompts(self, x: torch.Tensor, start: int, stop: int) -> Any:
        """``layer -> (batch, tokens, width)`` prompts (dropout drawn per call), for layers
        ``start .. stop-1`` that take prompts; projected only if one does."""
        depth, batch = self.visual_prompts.depth, x.shape[0]
        needed = start == 0 or (start <= depth and start < stop)
        prompts = self.visual_prompts.projected().to(x.dtype) if needed else None
        dropout = self.visual_prompts.prompt_dropout

        def layer_prompts(layer: int) -> torch.Tensor:
            return dropout(prompts[layer].unsqueeze(0).expand(batch, -1, -1))
        return layer_prompts

    def _run_blocks(self, x: torch.Tensor, start: int, stop: int, prompts: Any,
                    block_fn: Any = None) -> torch.Tensor:
        visual = self.clip.visual
        n = self.visual_prompts.tokens
        batch_first = getattr(visual.transformer, "batch_first", True)
        blocks = visual.transformer.resblocks
        for i in range(start, stop):
            if 1 <= i <= self.visual_prompts.depth:
                x = torch.cat([x[:, :1], prompts(i), x[:, 1 + n:]], dim=1)
            if block_fn is not None:
                x = block_fn(blocks[i], x, i == len(blocks) - 1)
            else:
                x = blocks[i](x) if batch_first else blocks[i](x.transpose(0, 1)).transpose(0, 1)
        return x

    # ------------------------------------------------------------------ text
    def encode_text_embeddings(self, x: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Run CLIP's text tower on token embeddings; pool at each sequence's EOT token."""
        clip = self.clip
        x = x + clip.positional_embedding.to(x.dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(dim=-1)]
        projection = clip.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    def _compute_text_features(self) -> torch.Tensor:
        if self.text_context is not None:
            embeddings = self.text_context.embeddings(self.clip.token_embedding)
            return self.encode_text_embeddings(embeddings, self.text_context.token_ids)
        ids = self.zeroshot_ids
        features = self.encode_text_embeddings(self.clip.token_embedding(ids), ids)
        features = features / features.norm(dim=-1, keepdim=True)
        return features.view(-1, 2, features.shape[-1]).mean(dim=0)

    def class_text_features(self) -> torch.Tensor:
        """(2, D) features of the two classes; cached whenever nothing can change them."""
        cacheable = not self.training and not torch.is_grad_enabled()
        cache = self._text_cache
        if cacheable and cache is not None and cache.device == self.device:
            return cache
        with torch.autocast(self.device.type, enabled=False):
            features = self._compute_text_features().float()
        self.text_encodings += 1
        if cacheable:
            self._text_cache = features
        return features

    # ------------------------------------------------------------------ scores
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Two-class logits (high, low quality) for uint8 or [0, 1] float RGB pixels."""
        image = self.encode_image(self.normalize(pixels))
        with torch.autocast(self.device.type, enabled=False):  # the score stays fp32
            return clip_logits(image, self.class_text_features(), self.clip.logit_scale)

    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """Quality in [0, 1], higher is better, for a batch of preprocessed pixels."""
        return quality_from_logits(self(pixels))

    def predict_with_embedding(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality as :meth:`predict` and the L2-normalised image embedding, from one pass.

        Burst grouping compares photos by the same image features the score is
        computed from, so it costs no second network run.
        """
        image = self.encode_image(self.normalize(pixels))
        logits = clip_logits(image, self.class_text_features(), self.clip.logit_scale)
        return quality_from_logits(logits), nn.functional.normalize(image.float(), dim=-1)

    @torch.inference_mode()
    def score(self, images: Any, batch_size: int = 32) -> list[float]:
        """Score PIL images or RGB tensors (CHW or NCHW, uint8 or [0, 1] floats) of any size."""
        from grmpiqa.io.preprocess import to_model_input
        from grmpiqa.model.acceleration import autocast_context

        was_training = self.training
        self.eval()
        try:
            batch = to_model_input(images, self.preprocess)
            scores: list[float] = []
            for start in range(0, batch.shape[0], batch_size):
                with autocast_context(self.device, self.precision):
                    quality = self.predict(batch[start:start + batch_size])
                scores.extend(quality.float().cpu().tolist())
            return scores
        finally:
            if was_training:
                self.train(True)
