"""The PyTorch peer of benchmarks/seq2seq.py: the same Transformer in plain PyTorch, its
training loop and a batched beam search WITHOUT a KV cache (see that file's docstring)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.seq2seq import (
    BEAM_SIZE,
    BOS_ID,
    EOS_ID,
    LENGTH_PENALTY,
    MAX_DECODE_LENGTH,
    PAD_ID,
    SIZES,
    VOCAB_SIZE,
    time_batches,
    tokens_summary,
)


def build_peer(vocab_size: int, model_dim: int, num_heads: int, ff_dim: int, encoder_layers: int,
               decoder_layers: int, dropout_rate: float = 0.1, max_positions: int = 256):
    """The layout of tasks/seq2seq/transformer.py (shared embeddings) in plain PyTorch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tasks.seq2seq.transformer import sinusoidal_table

    def linear(cin: int, cout: int) -> nn.Linear:  # Keras Dense defaults: glorot uniform, zero bias
        layer = nn.Linear(cin, cout)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def norm() -> nn.LayerNorm:
        return nn.LayerNorm(model_dim, eps=1e-6)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value, self.out = (linear(model_dim, model_dim) for _ in range(4))

        def forward(self, x, memory, mask=None, causal=False):  # mask (B, 1, 1, K) bool, True = attend
            split = lambda t: t.unflatten(-1, (num_heads, -1)).transpose(1, 2)  # noqa: E731
            mixed = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(memory)),
                                                   split(self.value(memory)), attn_mask=mask, is_causal=causal)
            return self.out(mixed.transpose(1, 2).flatten(2))

    class FeedForward(nn.Sequential):
        def __init__(self):
            super().__init__(norm(), linear(model_dim, ff_dim), nn.ReLU(), nn.Dropout(dropout_rate),
                             linear(ff_dim, model_dim), nn.Dropout(dropout_rate))

    class EncoderBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm, self.attention, self.ff = norm(), Attention(), FeedForward()

        def forward(self, x, mask):
            normed = self.attention_norm(x)
            x = x + F.dropout(self.attention(normed, normed, mask), dropout_rate, self.training)
            return x + self.ff(x)

    class DecoderBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_norm, self.self_attention = norm(), Attention()
            self.cross_norm, self.cross_attention, self.ff = norm(), Attention(), FeedForward()

        def forward(self, x, memory, mask):
            normed = self.self_norm(x)
            x = x + F.dropout(self.self_attention(normed, normed, causal=True), dropout_rate, self.training)
            x = x + F.dropout(self.cross_attention(self.cross_norm(x), memory, mask), dropout_rate, self.training)
            return x + self.ff(x)

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, model_dim)
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras Embedding default
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
            self.register_buffer("positions", torch.from_numpy(sinusoidal_table(max_positions, model_dim)))
            self.encoder = nn.ModuleList(EncoderBlock() for _ in range(encoder_layers))
            self.decoder = nn.ModuleList(DecoderBlock() for _ in range(decoder_layers))
            self.encoder_norm, self.decoder_norm = norm(), norm()

        def embed(self, tokens):
            x = self.embedding(tokens) * model_dim ** 0.5 + self.positions[:tokens.shape[1]]
            return F.dropout(x, dropout_rate, self.training)

        def encode(self, source):  # -> memory (B, S, D), key mask (B, 1, 1, S)
            mask = (source != PAD_ID)[:, None, None, :]
            x = self.embed(source)
            for block in self.encoder:
                x = block(x, mask)
            return self.encoder_norm(x), mask

        def decode(self, target_in, memory, mask):  # -> hidden states (B, T, D)
            x = self.embed(target_in)
            for block in self.decoder:
                x = block(x, memory, mask)
            return x

        def logits(self, hidden):  # (..., D) -> (..., V), the transposed shared embedding
            return self.decoder_norm(hidden) @ self.embedding.weight.to(hidden.dtype).T + self.output_bias

        def forward(self, source, target_in):
            return self.logits(self.decode(target_in, *self.encode(source)))

    return Transformer()


def peer_beam_search(model, source, max_length: int, forced_length: int, beam_size: int = BEAM_SIZE,
                     alpha: float = LENGTH_PENALTY):
    """Batched beam search WITHOUT a KV cache: every step re-decodes each beam's whole prefix.
    Ended beams extend by pad at no cost; stops when every beam has ended. -> lengths (B,)."""
    import torch

    batch = source.shape[0]
    memory, mask = model.encode(source)
    memory, mask = memory.repeat_interleave(beam_size, 0), mask.repeat_interleave(beam_size, 0)
    rows = torch.arange(batch, device=source.device)[:, None] * beam_size
    sequences = torch.full((batch * beam_size, 1), BOS_ID, dtype=torch.long, device=source.device)
    scores = torch.tensor([0.0] + [float("-inf")] * (beam_size - 1), device=source.device).repeat(batch)
    ended = torch.zeros(batch * beam_size, dtype=torch.bool, device=source.device)
    lengths = torch.full_like(ended, max_length, dtype=torch.long)
    for step in range(max_length):
        logits = model.logits(model.decode(sequences, memory, mask)[:, -1]).float()
        logits[:, EOS_ID] += 1e9 if step == forced_length - 1 else -1e9  # the benchmark's fixed length
        log_probs = torch.log_softmax(logits, dim=-1)
        log_probs[ended] = float("-inf")
        log_probs[ended, PAD_ID] = 0.0
        vocab = log_probs.shape[-1]
        top_scores, top = (scores[:, None] + log_probs).view(batch, beam_size * vocab).topk(beam_size, dim=-1)
        beams, tokens = (top // vocab + rows).flatten(), (top % vocab).flatten()
        sequences = torch.cat([sequences[beams], tokens[:, None]], dim=1)
        ended, lengths, scores = ended[beams], lengths[beams], top_scores.flatten()
        new_end = ~ended & (tokens == EOS_ID)
        lengths = torch.where(new_end, step + 1, lengths)
        ended = ended | new_end
        if bool(ended.all()):
            break
    best = (scores / ((5.0 + lengths) / 6.0) ** alpha).view(batch, beam_size).argmax(dim=1)
    return lengths.view(batch, beam_size)[torch.arange(batch), best]


def run_peer(data: dict[str, np.ndarray], args: argparse.Namespace, bf16: bool) -> dict:
    import torch
    import torch.nn.functional as F

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.peer_threads:
        torch.set_num_threads(args.peer_threads)
    torch.manual_seed(0)
    model = build_peer(VOCAB_SIZE, **SIZES[args.size]).to(device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases and LayerNorm, as ours
    decay = [p for p in model.parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=7e-4)
    step_model = torch.compile(model) if args.torch_compile else model
    source, target_in, target_out = (torch.from_numpy(data[key]).long().to(device)
                                     for key in ("source", "target_in", "target_out"))
    steps, batch_size = len(source) // args.batch_size, args.batch_size
    epoch_seconds, losses = [], []
    model.train()
    for _ in range(args.epochs):
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for step in range(steps):
            part = slice(step * batch_size, (step + 1) * batch_size)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                logits = step_model(source[part], target_in[part])
            loss = F.cross_entropy(logits.float().flatten(0, 1), target_out[part].flatten(), ignore_index=PAD_ID,
                                   label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.detach()
        losses.append(total.item() / steps)  # waits for the device
        epoch_seconds.append(time.perf_counter() - start)
    tokens = int(np.count_nonzero(data["target_out"]))
    train = {**tokens_summary(epoch_seconds, tokens), "final_loss": losses[-1]}

    model.eval()
    decode_source = torch.from_numpy(data["decode_source"]).long().to(device)

    def decode(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            return peer_beam_search(model, batch, MAX_DECODE_LENGTH, args.decode_length).cpu().numpy()

    return {"train": train, "beam4": time_batches(decode, decode_source, args.decode_batch_size, args.decode_length),
            "trainable_params": params, "version": torch.__version__, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
