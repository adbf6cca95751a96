"""Train stage: P x K identity batches from `pipelines.identity_batches`, `fit()` with the
chosen metric loss, then the deployed threshold chosen on the validation pairs (never on the
evaluation pairs) and saved beside the model (`threshold.json`).

Each epoch (`eval.epoch_every`) the same validation pairs give `val_auc` (ROC AUC) and
`val_accuracy` (at their best threshold) in the epoch logs: history.csv, the `monitor` of
best weights / early stopping, and the objective of `kts faces tune`. With
`data.val_identities=0` those pairs are of the training people (seen in training), so the
metric is optimistic; held-out validation people make it a measure of generalisation."""

from __future__ import annotations

import json
import math

import keras
import numpy as np

from pipelines import builder
from pipelines.identity_batches import Augment, IdentityBatches
from shared import training
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.faces import data as data_lib
from tasks.faces import models, whitening
from tasks.faces.config import FacesConfig
from tasks.faces.lbp import LocalBinaryPatternLayer
from tasks.faces.verification import LocalBinaryPatterns, accuracy_at, best_threshold, distances_of, pair_scores


def make_batches(config: FacesConfig, splits: data_lib.Splits) -> IdentityBatches:
    faces, batch = splits.faces, config.batch
    _, labels = np.unique(faces.labels[splits.train], return_inverse=True)  # 0..n-1 for ArcFace
    augment = Augment(batch.flip, batch.shift, batch.brightness, batch.contrast, batch.rotation)
    return IdentityBatches(faces.images[splits.train], labels.astype(np.int32), batch.identities,
                           batch.images_per_identity, config.seed, augment)


def validation_distances(model: keras.Model, config: FacesConfig, splits: data_lib.Splits,
                         limit: int = 0, compiled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same) of the validation pairs under the embedding `model`; `limit` > 0: a
    seeded subset of that many pairs (the same every epoch), only their images embedded;
    `compiled`: see `models.embed`."""
    pairs = splits.val_pairs
    keep = np.arange(len(pairs))
    if 0 < limit < len(pairs):
        keep = np.sort(np.random.default_rng([config.seed, 43]).choice(len(pairs), limit, replace=False))
    first, second = pairs.first[keep], pairs.second[keep]
    used = np.unique(np.concatenate([first, second]))
    embeddings = np.zeros((len(splits.faces), model.output.shape[-1]), np.float32)
    embeddings[used] = models.embed(model, splits.faces.images[used], config.eval.batch_size,
                                    config.eval.flip_average, compiled)
    return distances_of(embeddings, first, second), pairs.same[keep]


def epoch_metrics(embedding: keras.Model, config: FacesConfig, splits: data_lib.Splits):
    """`compute(model)` for `fit(epoch_metrics=)`: val_auc and val_accuracy of the embedding
    network (the model fit trains may carry the ArcFace head; `embedding` shares its weights)."""

    def compute(_model) -> dict:
        distances, same = validation_distances(embedding, config, splits, config.eval.epoch_pairs, compiled=True)
        if not np.isfinite(distances).all():
            return {"val_auc": math.nan, "val_accuracy": math.nan}
        scores = pair_scores(distances, same)
        return {"val_auc": scores["auc"], "val_accuracy": scores["accuracy"]}

    return compute


def choose_threshold(model: keras.Model, config: FacesConfig, splits: data_lib.Splits,
                     cross_fitted: tuple[np.ndarray, np.ndarray, int] | None = None) -> dict:
    """The best-accuracy threshold on the validation pairs under `model`, or on `cross_fitted`
    (distances, same, groups) of them (`whiten`)."""
    distances, same = cross_fitted[:2] if cross_fitted is not None else validation_distances(model, config, splits)
    threshold = best_threshold(distances, same)
    people = len(splits.identities["train" if splits.val_seen else "val"])
    chosen_on = (f"all pairs of the {people} training people (seen in training; data.val_identities=0)"
                 if splits.val_seen else f"all pairs of {people} held-out validation people")
    if cross_fitted is not None:
        chosen_on = (f"the pairs within {cross_fitted[2]} groups of the {people} training people, each under a "
                     "whitening fitted without its group (seen in training; data.val_identities=0)")
    return {"threshold": threshold, "metric": "Euclidean distance between unit embeddings (same person when <=)",
            "flip_average": config.eval.flip_average, "chosen_on": chosen_on,
            "validation_accuracy": accuracy_at(distances, same, threshold),
            "validation_pairs": len(distances)}


def whiten(embedding: keras.Model, config: FacesConfig, splits: data_lib.Splits):
    """(the embedding model whitened by fits on the training images, one whitened LBP block per
    `model.lbp_radii` beside it; its summary; the cross-fitted validation distances or None):
    `model.whitening`, see `tasks.faces.whitening`."""
    train = splits.train
    if len(train) > whitening.MAX_FIT_IMAGES:
        train = np.sort(np.random.default_rng([config.seed, 46]).choice(train, whitening.MAX_FIT_IMAGES,
                                                                          replace=False))
    features, names = [embedding.output], ["network"]
    extract = [lambda images: models.embed(embedding, images, config.eval.batch_size)]
    for radius in config.model.lbp_radii:
        twin = LocalBinaryPatterns.for_size(config.data.image_size, radius, config.model.lbp_cells,
                                            config.model.lbp_threshold)  # the layer's numpy twin (tested equal)
        features.append(LocalBinaryPatternLayer(twin.radius, twin.cells, twin.threshold,
                                                name=f"lbp_r{radius}")(embedding.input))
        names.append(f"lbp_r{radius}")
        extract.append(twin.transform)
    images = splits.faces.images[train]
    views = [images, np.ascontiguousarray(images[:, :, ::-1])] if config.eval.flip_average else [images]
    # blocks[b][v]: block b's features of view v, one row per fitted training image
    blocks = [[whitening.in_chunks(compute, view) for view in views] for compute in extract]
    shrinkage = config.model.whitening
    fits = [whitening.fit(whitening.averaged(block), shrinkage) for block in blocks]
    cross_fitted = None
    labels = splits.faces.labels[train]
    if splits.val_seen and len(np.unique(labels)) >= 4:
        cross_fitted = whitening.cross_fitted_distances(blocks, labels, np.arange(len(train)),
                                                        whitening.pairs_among(splits.val_pairs, train),
                                                        shrinkage, config.seed)
    info = {"shrinkage": shrinkage, "fitted_on_images": len(train), "views": len(views),
            "blocks": {name: int(block[0].shape[1]) for name, block in zip(names, blocks)}}
    return whitening.whitened_model(embedding.input, features, fits, names), info, cross_fitted


def read_threshold(run: Run) -> dict:
    path = run.dir.root / "threshold.json"
    if not path.exists():
        raise FileNotFoundError(f"No deployed threshold at {path}; train first "
                                f"(kts faces train --workdir {run.dir.root}).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); train again or fix the file.") from None


def train(run: Run) -> dict:
    config: FacesConfig = run.config
    splits = data_lib.load_splits(config, run.data_root)
    data_lib.save_pairs(run.dir.root, splits)
    batches = make_batches(config, splits)
    steps = batches.steps_per_epoch(config.train.max_steps_per_epoch)
    projected = models.build_embedding_model(config.model.backbone, config.data.image_size,
                                             config.model.embedding_dim, config.model.width_multiplier,
                                             config.model.dropout_rate, config.model.grid, config.model.cnn_size)
    model = models.training_model(projected, config.model.loss, len(batches.identities))
    # what is saved and scored: the projection the loss trains, or the grid features under it
    embedding = models.grid_embedding_model(projected) if config.model.embedding == "grid" else projected
    model.compile(optimizer=training.make_optimizer(config.train, steps), loss=models.make_loss(config),
                  jit_compile=training.jit_compile_flag(config.train))
    counts = splits.counts()
    print(f"faces: {counts['train_images']} training images of {counts['train_identities']} people, "
          f"{counts['eval_identities']} evaluation people ({counts['eval_pairs_same']} same / "
          f"{counts['eval_pairs_different']} different pairs), {steps} steps of {batches.per_batch} x "
          f"{batches.per_identity} per epoch, {config.model.backbone} ({projected.count_params():,} parameters), "
          f"loss {config.model.loss}")

    def stream(start):
        return builder.step_dataset(batches, start_step=start, prefetch=config.train.prefetch)

    measured = config.eval.epoch_every > 0
    result = training.fit(model, make_train_data=stream, validation_data=None, config=config.train,
                          steps_per_epoch=steps, checkpoints_dir=run.dir.checkpoints, logs_dir=run.dir.logs,
                          resume=run.resume, verbose=run.verbose,
                          monitor="val_auc" if measured else "loss", monitor_mode="max" if measured else "min",
                          epoch_metrics=epoch_metrics(embedding, config, splits) if measured else None,
                          epoch_metrics_every=max(1, config.eval.epoch_every))
    best_epoch = None
    if config.eval.keep_best and result["best"] is not None:  # by val_auc (resumed epochs included)
        model.load_weights(str(result["best"]["weights"]))
        best_epoch = result["best"]["epoch"]
        print(f"faces: keeping epoch {best_epoch} (val_auc {result['best']['value']:.4f})")
    whitened, cross_fitted = None, None
    if config.model.whitening > 0:
        embedding, whitened, cross_fitted = whiten(embedding, config, splits)
    save_keras(embedding, run.dir.model_keras)
    threshold = choose_threshold(embedding, config, splits, cross_fitted)
    threshold["whitening"] = whitened
    if whitened and splits.val_seen and cross_fitted is None:
        threshold["chosen_on"] += (" -- fewer than 4 training people, too few to cross-fit the whitening: these pairs "
                                   "were whitened by a fit on themselves, so the threshold is on the loose side")
    atomic_write_json(run.dir.root / "threshold.json", threshold)
    seconds = result["history"].get("epoch_seconds", [])
    images = steps * batches.batch_size
    summary = {"data": counts, "stopped_reason": result["stopped_reason"], "steps_per_epoch": steps,
               "batch": [batches.per_batch, batches.per_identity], "epochs": config.train.epochs,
               "loss": result["history"].get("loss", []), "epoch_seconds": seconds,
               "val_auc": [v if math.isfinite(v) else None for v in result["history"].get("val_auc", [])],
               "kept_epoch": best_epoch,
               "images_per_second": [images / s for s in seconds if s > 0],
               "left_out_identities": [splits.faces.names[i] for i in np.unique(splits.faces.labels[splits.train])
                                       [batches.left_out]] if batches.left_out else [],
               "parameters": int(embedding.count_params()), "resumed_from_step": result["resumed_from_step"],
               "backend": keras.backend.backend(), "threshold": threshold, "skipped": splits.skipped}
    atomic_write_json(run.dir.training_json, summary)
    print(f"faces: deployed threshold {threshold['threshold']:.4f} (validation accuracy "
          f"{threshold['validation_accuracy']:.2%}, {threshold['chosen_on']})")
    return summary
