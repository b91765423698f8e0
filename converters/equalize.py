"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): rescale channels between two layers
so that both quantize with less error, leaving the float model's outputs as they were.

Where a conv (with its BatchNormalization) feeds a ReLU, scaling the ReLU's input channel c by t_c > 0 scales its
output by t_c (ReLU(t x) = t ReLU(x)); dividing the input-channel c weights of every conv that reads it by t_c
undoes it exactly (in real arithmetic; float rounding moves outputs by ~1e-7 relative). Between the ReLU and those
convs the scaled channels may pass through zero padding, global average pooling and a Multiply by a tensor that does
not depend on them (RegNetY's squeeze-excitation: y * sigmoid(fc2(relu(fc1(pool(y)))))), whose fc1 is one of the
compensating convs. In RegNetY that finds, per block, conv1 -> grouped conv2 and conv2 -> (SE fc1, conv3).

t_c = sqrt(r2_c / r1_c), with r1_c the range of the producer's output-channel c weights (BN folded in, as every
converter folds it) and r2_c the range of the main consumer's input-channel c weights: both become sqrt(r1 r2).

A model without such a pair (ConvNeXt: depthwise conv -> LayerNorm) is left as it is and `equalize` says so
(`Equalized.pairs == 0`); callers report the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_SCALE = 1e3   # clip t_c to [1/MAX_SCALE, MAX_SCALE]: dead channels (zero weights) keep t = 1
ITERATIONS = 8    # a layer can be the consumer of one pair and the producer of the next: alternate until settled


@dataclass
class Pair:
    """Producers (Conv2D, optionally through a BatchNormalization) whose output channels reach consumers (Conv2D /
    Dense reading them as input channels) only through layers that pass a positive channel scale on: plain ReLU,
    zero padding, global average pooling, a Multiply by an operand that does not depend on them, and an Add whose
    every input is scaled alike (a residual stream: all of its producers scale together). `main` consumers decide
    the scale; `observed` are the scaled tensors a converter keeps (their calibration ranges)."""

    conv: str                       # the first producer (names the pair)
    bn: str | None
    consumers: list[str]
    main: list[str]
    observed: list[str] = field(default_factory=list)
    more: list[tuple[str, str | None]] = field(default_factory=list)  # further producers (residual streams)

    @property
    def producers(self) -> list[tuple[str, str | None]]:
        return [(self.conv, self.bn), *self.more]


@dataclass
class Equalized:
    model: object                    # keras.Model (a new one; the original is untouched)
    pairs: int
    layers: list[str] = field(default_factory=list)   # producer names
    skipped: list[str] = field(default_factory=list)  # why producers that looked like candidates were not used


def layer_graph(model):
    """(inputs of each layer as producer layers, consumers of each layer), by layer name."""
    inputs: dict[str, list] = {}
    consumers: dict[str, list] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        nodes = layer._inbound_nodes
        if len(nodes) != 1:
            inputs[layer.name] = None  # shared or unused: never touched
            continue
        producers = [t._keras_history.operation for t in nodes[0].input_tensors]
        inputs[layer.name] = producers
        for p in producers:
            consumers.setdefault(p.name, []).append(layer)
    return inputs, consumers


def bn_scale(bn, gamma, var) -> np.ndarray:
    """A BatchNormalization's per-channel factor on its input (what a converter folds into the conv before it)."""
    return np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + bn.epsilon)


def _is_plain_relu(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and not layer.negative_slope and not layer.threshold
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") == "relu"
    return False


def _linear(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear"


def _producer(layer, inputs, consumers):
    """(conv, bn or None) when `layer` is the output of a linear conv (through a BatchNormalization that is the conv's
    only consumer), else None."""
    import keras

    bn = None
    if isinstance(layer, keras.layers.BatchNormalization):
        if layer.axis not in (-1, 3) or not (layer.scale and layer.center) or not inputs.get(layer.name):
            return None
        bn, layer = layer, inputs[layer.name][0]
    if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.DepthwiseConv2D):
        return None
    if not _linear(layer) or inputs.get(layer.name) is None or len(consumers[layer.name]) != 1:
        return None
    return layer, bn


def find_pairs(model) -> tuple[list[Pair], list[str]]:
    """The equalizable groups of a functional Keras model (producers -> scale-passing layers -> consumers), and why
    near misses were skipped."""
    import keras

    inputs, consumers = layer_graph(model)
    outputs = {t._keras_history.operation.name for t in model.outputs}  # a scaled model output would not be exact
    pairs, skipped, taken = [], [], set()
    passing = (keras.layers.ZeroPadding2D, keras.layers.GlobalAveragePooling2D, keras.layers.Add,
               keras.layers.Multiply)
    for seed in model.layers:
        found = _producer(seed, inputs, consumers)
        if found is None or found[0].name in taken:
            continue
        conv, bn = found
        if bn is not None and seed is not bn:
            continue  # a conv followed by BN: seeded from the BN
        if bn is None and len(consumers[conv.name]) == 1 and isinstance(consumers[conv.name][0],
                                                                         keras.layers.BatchNormalization):
            continue
        head = bn or conv
        producers = {conv.name: (conv, bn)}
        scaled, pooled, queue, sinks, main, multiplied, ok = {head.name}, set(), [head], [], [], [], True

        def make_scaled(layer) -> bool:
            """Scale `layer`'s output channels too: a producer, or a ReLU / Add whose inputs are scaled."""
            if layer.name in scaled:
                return True
            got = _producer(layer, inputs, consumers)
            if got is not None and (got[1] is None or got[1] is layer):
                producers[got[0].name] = got
                scaled.add(layer.name)
                queue.append(layer)
                return True
            if (_is_plain_relu(layer) or isinstance(layer, keras.layers.Add)) and inputs.get(layer.name):
                scaled.add(layer.name)
                queue.append(layer)
                return all(make_scaled(p) for p in inputs[layer.name])
            return False

        while queue and ok:
            layer = queue.pop()
            if layer.name in outputs:
                ok = False
            for user in consumers[layer.name]:
                if inputs.get(user.name) is None:
                    ok = False
                elif isinstance(user, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
                        user, keras.layers.DepthwiseConv2D) and len(inputs[user.name]) == 1:
                    if user.name not in sinks:
                        sinks.append(user.name)
                        if layer.name not in pooled:
                            main.append(user.name)
                elif user.name in scaled:
                    continue
                elif _is_plain_relu(user) or (isinstance(user, passing) and not isinstance(
                        user, (keras.layers.Add, keras.layers.Multiply)) and len(inputs[user.name]) == 1):
                    scaled.add(user.name)
                    if layer.name in pooled or isinstance(user, keras.layers.GlobalAveragePooling2D):
                        pooled.add(user.name)
                    queue.append(user)
                elif isinstance(user, keras.layers.Add):
                    if layer.name in pooled:
                        ok = False
                        continue
                    scaled.add(user.name)
                    queue.append(user)
                    ok = all(make_scaled(p) for p in inputs[user.name])
                elif isinstance(user, keras.layers.Multiply) and len(inputs[user.name]) == 2:
                    other = [p for p in inputs[user.name] if p.name != layer.name]
                    if len(other) != 1:
                        ok = False
                        continue
                    multiplied.append(other[0])
                    scaled.add(user.name)
                    if layer.name in pooled:
                        pooled.add(user.name)
                    queue.append(user)
                else:
                    ok = False
        # A Multiply passes the scale on only when its other operand does not depend on the scaled tensors except
        # through a compensating consumer (checked once every scaled layer and consumer is known).
        ok = ok and all(_independent(other, scaled, set(sinks), inputs) for other in multiplied)
        relu_after_seed = any(_is_plain_relu(model.get_layer(n)) for n in scaled)
        if not ok or not sinks or not relu_after_seed and len(producers) == 1:
            if ok and sinks:
                continue  # conv -> BN -> conv with nothing between: not this module's business
            skipped.append(f"{conv.name}: its output reaches a layer that cannot absorb a channel scale")
            continue
        channels = {int(model.get_layer(n).output.shape[-1]) for n in scaled}
        if len(channels) != 1:
            skipped.append(f"{conv.name}: the scaled tensors disagree on their channel count")
            continue
        taken.update(producers)
        observed = [n for n in scaled if _observed(model.get_layer(n), consumers)]
        first, *rest = producers.values()
        pairs.append(Pair(first[0].name, first[1].name if first[1] else None, sinks, main or sinks, observed,
                          [(c.name, b.name if b else None) for c, b in rest]))
    return pairs, skipped


def _observed(layer, consumers) -> bool:
    """A scaled tensor that a converter keeps (not fused into the next op): what calibration ranges are taken of."""
    import keras

    if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.ZeroPadding2D)):
        return False
    users = consumers[layer.name]
    return not (users and all(_is_plain_relu(u) for u in users))


def _independent(layer, scaled: set, sinks: set, inputs, depth: int = 64) -> bool:
    """True when `layer`'s output reaches back to the scaled tensors only through a compensating consumer (the SE
    branch: sigmoid <- fc2 <- relu <- fc1, fc1 compensated)."""
    stack, seen = [(layer, 0)], set()
    while stack:
        node, d = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.name in scaled:
            return False
        if d > depth or inputs.get(node.name) is None:
            return False
        if node.name in sinks:
            continue  # a compensating consumer of the scaled tensors: its output is unchanged
        stack.extend((p, d + 1) for p in inputs[node.name])
    return True


def _input_slices(layer, kernel: np.ndarray):
    """For a Conv2D/Dense kernel, a function c -> index of the weights that read input channel c."""
    if kernel.ndim == 2:  # Dense (in, out)
        return lambda c: (c, slice(None))
    groups = getattr(layer, "groups", 1)
    gin, gout = kernel.shape[2], kernel.shape[3] // groups
    return lambda c: (slice(None), slice(None), c % gin, slice((c // gin) * gout, (c // gin + 1) * gout))


def activation_ranges(model, inputs: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Per pair (by its first producer's name): the per-channel max |activation| over its observed tensors on `inputs`
    (calibration images)."""
    pairs, _ = find_pairs(model)
    if not pairs:
        return {}
    import tensorflow as tf

    from converters.probe import batches, per_channel

    names = sorted({n for p in pairs for n in p.observed})
    seen = {n: np.zeros(model.get_layer(n).output.shape[-1]) for n in names}
    largest = per_channel(lambda t, axis: tf.reduce_max(tf.abs(t), axis=axis))
    for outs in batches(model, [model.get_layer(n).output for n in names], inputs, batch, largest):
        for n, out in zip(names, outs):
            seen[n] = np.maximum(seen[n], out)
    return {p.conv: np.max([seen[n] for n in p.observed], axis=0) for p in pairs}


def equalize(model, iterations: int = ITERATIONS, ranges: dict[str, np.ndarray] | None = None,
             alpha: float = 0.5) -> Equalized:
    """A copy of `model` with every equalizable pair rescaled (see the module). Exact in float up to rounding.

    ranges: per-channel activation maxima of the pairs' ReLU outputs (`activation_ranges`): the scale then balances
    each activation channel's range against its consumer weights' range (t_c = r2_c^alpha / a_c^(1 - alpha)) instead
    of the producer's weight range."""
    import keras

    pairs, skipped = find_pairs(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if not pairs:
        return Equalized(clone, 0, [], skipped)
    weights = {layer.name: [np.asarray(w, np.float64) for w in layer.get_weights()] for layer in clone.layers}
    ranges = {k: np.asarray(v, np.float64) for k, v in ranges.items()} if ranges is not None else None
    for _ in range(iterations if ranges is None else 1):
        for pair in pairs:
            _equalize_pair(pair, clone, weights, ranges, alpha)
    for name, ws in weights.items():
        layer = clone.get_layer(name)
        if ws:
            layer.set_weights([w.astype(v.dtype) for w, v in zip(ws, layer.get_weights())])
    return Equalized(clone, len(pairs), [p.conv for p in pairs], skipped)


def _producer_range(pair: Pair, model, weights) -> np.ndarray:
    """Per output channel: the largest |weight| of the producers, BN folded in (as converters fold it)."""
    ranges = []
    for conv, bn in pair.producers:
        kernel = weights[conv][0]
        r = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
        if bn:
            gamma, _, _, var = weights[bn][:4]
            r = r * np.abs(bn_scale(model.get_layer(bn), gamma, var))
        ranges.append(r)
    return np.max(ranges, axis=0)


def _equalize_pair(pair: Pair, model, weights, ranges=None, alpha: float = 0.5) -> None:
    r1 = _producer_range(pair, model, weights) if ranges is None else ranges[pair.conv]
    channels = r1.shape[0]
    r2 = np.zeros(channels)
    for name in pair.main:
        kernel = weights[name][0]
        index = _input_slices(model.get_layer(name), kernel)
        r2 = np.maximum(r2, [np.abs(kernel[index(c)]).max() for c in range(channels)])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(r2 / r1) if ranges is None else r2 ** alpha / r1 ** (1 - alpha)
    t = np.where(np.isfinite(t) & (t > 0), np.clip(t, 1 / MAX_SCALE, MAX_SCALE), 1.0)
    if ranges is not None:
        ranges[pair.conv] = ranges[pair.conv] * t
    for conv, bn in pair.producers:
        if bn:
            weights[bn][0] = weights[bn][0] * t  # gamma
            weights[bn][1] = weights[bn][1] * t  # beta
        else:
            weights[conv][0] = weights[conv][0] * t
            if len(weights[conv]) > 1:
                weights[conv][1] = weights[conv][1] * t
    for name in pair.consumers:
        kernel = weights[name][0]
        index = _input_slices(model.get_layer(name), kernel)
        for c in range(channels):
            kernel[index(c)] /= t[c]
