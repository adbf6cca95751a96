"""Optimisation-based stylization (Gatys et al. 2016): the image is the variable.

One compiled step per scale (`autodiff`): Adam's update is written in keras.ops inside it;
L-BFGS (scipy's L-BFGS-B, pixels bounded to 0..255) calls the compiled value-and-gradient
function. Coarse to fine over `scales`, init from the content, the (first) style image or
seeded noise, and colour preservation (luminance-only, or the style images' colours matched
to the content's before the transfer).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tasks.style import images as image_lib
from tasks.style.autodiff import compile_function, value_and_grad
from tasks.style.config import TransferConfig
from tasks.style.losses import PerceptualLoss

TERMS = ("content", "style", "tv")


@dataclasses.dataclass
class TransferResult:
    image: np.ndarray  # float32 (H, W, 3), 0..255
    history: list[dict]  # {iteration, scale, side, content, style, tv, total, seconds}
    seconds: float
    iterations: int

    @property
    def iterations_per_second(self) -> float:
        """Steady speed: over the last scale's logged iterations after its first (which
        includes tracing and compiling)."""
        last = [h for h in self.history if h["scale"] == self.history[-1]["scale"]] if self.history else []
        if len(last) < 2 or last[-1]["seconds"] <= last[0]["seconds"]:
            return float("nan")
        return (last[-1]["iteration"] - last[0]["iteration"]) / (last[-1]["seconds"] - last[0]["seconds"])


def _loss_fn(loss: PerceptualLoss):
    def total(image, content_features, style_grams, variables):
        terms = loss.terms(image, content_features, style_grams, variables)
        return terms["content"] + terms["style"] + terms["tv"], terms

    return value_and_grad(total)


def make_adam_step(loss: PerceptualLoss, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8):
    """Compiled (image, m, v, step, lr, content_features, style_grams, variables) ->
    (image, m, v, terms); the update in keras.ops, pixels clipped to 0..255."""
    from keras import ops

    grad_fn = _loss_fn(loss)

    def step(image, m, v, t, learning_rate, content_features, style_grams, variables):
        (_, terms), grad = grad_fn(image, content_features, style_grams, variables)
        m = beta_1 * m + (1.0 - beta_1) * grad
        v = beta_2 * v + (1.0 - beta_2) * grad * grad
        m_hat = m / (1.0 - ops.power(beta_1, t))
        v_hat = v / (1.0 - ops.power(beta_2, t))
        image = ops.clip(image - learning_rate * m_hat / (ops.sqrt(v_hat) + epsilon), 0.0, 255.0)
        return image, m, v, terms

    return compile_function(step)


def _scale_sides(config: TransferConfig) -> list[int]:
    return [max(16, round(config.size / 2 ** (config.scales - 1 - i))) for i in range(config.scales)]


def _initial(config: TransferConfig, content: np.ndarray, styles: list[np.ndarray], seed: int) -> np.ndarray:
    if config.init == "content":
        return content.copy()
    if config.init == "style":
        return image_lib.resize(styles[0], content.shape[:2])
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, content.shape).astype(np.float32)


def transfer(loss: PerceptualLoss, content: np.ndarray, styles: list[np.ndarray], config: TransferConfig,
             style_blend: list[float] | None = None, seed: int = 0, log=print) -> TransferResult:
    """Stylizes `content` (float RGB 0..255) with `styles`, blended by `style_blend`."""
    from keras import ops

    config.validate()
    if config.preserve_color == "histogram":
        styles = [image_lib.match_color(style, content) for style in styles]
    history: list[dict] = []
    adam_step = make_adam_step(loss) if config.optimizer == "adam" else None
    lbfgs_fn = compile_function(_loss_fn(loss)) if config.optimizer == "lbfgs" else None
    variables = loss.variables()
    image = None
    started = time.perf_counter()
    done = 0
    for scale, side in enumerate(_scale_sides(config)):
        content_s = image_lib.fit_side(content, side)
        styles_s = [image_lib.fit_side(style, side) for style in styles]
        image = (_initial(config, content_s, styles_s, seed) if image is None
                 else image_lib.resize(image, content_s.shape[:2]))
        content_features = ops.convert_to_tensor(loss.content_target(content_s))
        style_grams = [ops.convert_to_tensor(g) for g in loss.style_targets(styles_s, style_blend)]

        def record(iteration, terms, scale=scale, side=side):
            values = {k: float(ops.convert_to_numpy(terms[k])) for k in TERMS}
            history.append({"iteration": iteration, "scale": scale, "side": side, **values,
                            "total": sum(values.values()), "seconds": time.perf_counter() - started})
            if log:
                log(f"transfer {side} px, iteration {iteration}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in values.items()))

        if adam_step is not None:
            image, done = _run_adam(adam_step, image, content_features, style_grams, variables, config,
                                    record, done)
        else:
            image, done = _run_lbfgs(lbfgs_fn, image, content_features, style_grams, variables, config,
                                     record, done)
    seconds = time.perf_counter() - started
    result = np.asarray(image, np.float32)
    if config.preserve_color == "luminance":
        result = image_lib.keep_luminance(result, content)
    return TransferResult(result, history, seconds, done)


def _run_adam(step, image, content_features, style_grams, variables, config, record, done):
    from keras import ops

    x = ops.convert_to_tensor(np.asarray(image, np.float32)[None])
    m = ops.zeros_like(x)
    v = ops.zeros_like(x)
    learning_rate = ops.convert_to_tensor(np.float32(config.learning_rate))
    for i in range(1, config.iterations + 1):
        x, m, v, terms = step(x, m, v, ops.convert_to_tensor(np.float32(i)), learning_rate,
                              content_features, style_grams, variables)
        if i == 1 or i % config.log_every == 0 or i == config.iterations:
            record(done + i - 1, terms)  # the terms of the image before this update
    return ops.convert_to_numpy(x)[0], done + config.iterations


def _run_lbfgs(fn, image, content_features, style_grams, variables, config, record, done):
    """scipy's L-BFGS-B over u = x / scale. Its first trial step has unit length: in pixel
    units that changes the loss by less than float32 resolves (the line search then stalls),
    so u is scaled to make that step about 2 levels per pixel."""
    from keras import ops
    from scipy.optimize import Bounds, minimize

    shape = (1, *image.shape)
    scale = 2.0 * np.sqrt(image.size)
    calls = {"n": 0}

    def value_and_gradient(flat):
        x = ops.convert_to_tensor((flat * scale).reshape(shape).astype(np.float32))
        (total, terms), grad = fn(x, content_features, style_grams, variables)
        calls["n"] += 1
        if calls["n"] == 1 or calls["n"] % config.log_every == 0:
            record(done + calls["n"] - 1, terms)
        gradient = np.asarray(ops.convert_to_numpy(grad), np.float64).ravel() * scale
        return float(ops.convert_to_numpy(total)), gradient

    found = minimize(value_and_gradient, np.asarray(image, np.float64).ravel() / scale, jac=True,
                     method="L-BFGS-B", bounds=Bounds(0.0, 255.0 / scale),
                     options={"maxiter": config.iterations, "maxfun": config.iterations, "maxcor": 20,
                              "ftol": 0.0, "gtol": 0.0})
    result = (found.x * scale).reshape(image.shape).astype(np.float32)
    (_, terms), _ = fn(ops.convert_to_tensor(result[None]), content_features, style_grams, variables)
    record(done + calls["n"], terms)  # the final image's terms
    return result, done + calls["n"]
