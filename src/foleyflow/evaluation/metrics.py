"""The field's distribution and pairwise metrics, computed as audioldm_eval computes them (SPEC 5, 6).

Every function takes plain NumPy arrays of embeddings or logits, so the metrics are
independent of the backbone that produced them:

    frechet_distance   FD (PANNs 2048-d) and FAD (VGGish 128-d frames):
                       ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2))
    fad_infinity       FAD extrapolated to an infinite sample (Gui et al. 2023)
    kl_per_pair        KL(softmax(ref) || softmax(gen)) for each matched pair of files
    inception_score    exp(E_x KL(p(y|x) || p(y))) over 10 shuffled splits
    clap_score         mean cosine of L2-normalised audio and text embeddings

Figures are computed in float64; the caller's arrays are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foleyflow.errors import InputError

FRECHET_RETRY_EPS = 1e-6  # audioldm_eval's offset added to both covariances when the root is not finite
KL_EPS = 1e-6  # audioldm_eval adds this to the generated probabilities before the log
IS_SPLITS = 10
IS_SEED = 2020  # the shuffle seed torch-fidelity and audioldm_eval use


@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a set of embeddings (rows = samples)."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> "Gaussian":
        embeddings = _as_matrix(embeddings, "embeddings")
        if embeddings.shape[0] < 2:
            raise InputError(f"a covariance needs at least 2 embeddings, got {embeddings.shape[0]}")
        return cls(embeddings.mean(axis=0), np.cov(embeddings, rowvar=False))


def frechet_distance(first: np.ndarray | Gaussian, second: np.ndarray | Gaussian) -> float:
    """Frechet distance between two embedding sets (or their fitted Gaussians).

    tr(sqrt(S1 S2)) is taken from eigenvalues: with R = sqrt(S1) (symmetric, from eigh),
    S1 S2 is similar to R S2 R, which is symmetric PSD, so tr sqrt(S1 S2) = sum sqrt(eig(R S2 R)).
    This is exact and avoids scipy.linalg.sqrtm's complex round-off on near-singular
    covariances. If anything is not finite, retry with eps * I added to both covariances,
    as audioldm_eval does.
    """
    a = first if isinstance(first, Gaussian) else Gaussian.fit(first)
    b = second if isinstance(second, Gaussian) else Gaussian.fit(second)
    if a.mean.shape != b.mean.shape:
        raise InputError(f"embedding sizes differ: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    diff = a.mean - b.mean
    trace_root = _trace_sqrt_product(a.cov, b.cov)
    if not np.isfinite(trace_root):
        offset = np.eye(a.cov.shape[0]) * FRECHET_RETRY_EPS
        trace_root = _trace_sqrt_product(a.cov + offset, b.cov + offset)
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_root)


def _trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """tr(sqrt(cov1 @ cov2)) for symmetric PSD matrices, via two symmetric eigen-decompositions."""
    if not (np.isfinite(cov1).all() and np.isfinite(cov2).all()):
        return float("nan")
    values, vectors = np.linalg.eigh(cov1)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root1 @ cov2 @ root1
    middle = (middle + middle.T) / 2.0  # symmetric by construction; remove round-off
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())


def per_clip_frechet(reference: np.ndarray | Gaussian, clip_frames: list[np.ndarray]) -> np.ndarray:
    """One Frechet distance per clip: the clip's frame embeddings against the reference set.

    Shows which generated clips pull FAD up (fadtk's per-song score). Clips need >= 2 frames.
    """
    ref = reference if isinstance(reference, Gaussian) else Gaussian.fit(reference)
    return np.array([frechet_distance(ref, frames) for frames in clip_frames])


@dataclass(frozen=True)
class FadInfinity:
    value: float  # the intercept: FAD at 1/N = 0
    slope: float
    sizes: np.ndarray
    fads: np.ndarray
    ci95: tuple[float, float]  # of the intercept, from the fit (``intercept_interval``)


def extrapolate_to_infinity(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares line value = slope / N + intercept; returns (intercept, slope)."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    design = np.stack([x, np.ones_like(x)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(design, np.asarray(values, dtype=np.float64), rcond=None)
    return float(intercept), float(slope)


def intercept_interval(sizes: np.ndarray, values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the intercept of ``extrapolate_to_infinity``'s least-squares line.

    The textbook OLS interval (n - 2 degrees of freedom). FAD-inf's subsets are drawn from one
    set, so its points are not independent and the interval understates the uncertainty; it
    says how well the line fits, not how another generated set would score.
    """
    from scipy import stats

    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if x.size < 3:
        raise InputError(f"an interval for the intercept needs at least 3 points, got {x.size}")
    intercept, slope = extrapolate_to_infinity(sizes, values)
    residual = values - (intercept + slope * x)
    variance = residual @ residual / (x.size - 2)
    spread = ((x - x.mean()) ** 2).sum()
    stderr = np.sqrt(variance * (1.0 / x.size + x.mean() ** 2 / spread))
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 2) * stderr)
    return intercept - half, intercept + half


def fad_infinity(
    reference: np.ndarray,
    generated: np.ndarray,
    num_points: int = 15,
    min_size: int | None = None,
    seed: int = 0,
) -> FadInfinity:
    """FAD-inf: FAD of random subsets of ``generated`` (sizes from min_size to all, without
    replacement) against all of ``reference``, extrapolated linearly in 1/N to N = infinity."""
    generated = _as_matrix(generated, "generated embeddings")
    count = generated.shape[0]
    min_size = max(2, count // 4) if min_size is None else min_size
    if not 2 <= min_size < count:
        raise InputError(f"FAD-inf needs more than {max(min_size, 2)} generated embeddings, got {count}")
    ref = Gaussian.fit(reference)
    sizes = np.unique(np.linspace(min_size, count, num_points).astype(int))
    rng = np.random.default_rng(seed)
    fads = np.array([frechet_distance(ref, generated[rng.choice(count, size, replace=False)]) for size in sizes])
    intercept, slope = extrapolate_to_infinity(sizes, fads)
    return FadInfinity(intercept, slope, sizes, fads, intercept_interval(sizes, fads) if sizes.size >= 3 else (intercept, intercept))


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def kl_per_pair(reference_logits: np.ndarray, generated_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(ref) || softmax(gen)) for each row pair, in nats (audioldm_eval's "kl_softmax").

    Row i of both arrays must come from the same file name (see ``pairing``); the reported KL
    is the mean of this vector. KL_EPS is added to the generated probabilities as the
    toolbox does, so a zero there does not give infinity.
    """
    ref = _as_matrix(reference_logits, "reference logits")
    gen = _as_matrix(generated_logits, "generated logits")
    if ref.shape != gen.shape:
        raise InputError(f"KL needs matched pairs: reference {ref.shape} vs generated {gen.shape}")
    p = softmax(ref)
    q = softmax(gen) + KL_EPS
    terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)
    return terms.sum(axis=1)


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = IS_SEED) -> tuple[float, float]:
    """Inception score (mean, std over splits) of class logits, as torch-fidelity computes it.

    Rows are shuffled with NumPy's RandomState(seed), cut into ``splits`` chunks of
    ceil(N / splits) rows (torch.chunk's rule; the last chunk may be shorter), and each
    chunk scores exp(mean_x KL(p(y|x) || mean_x p(y|x))).
    """
    logits = _as_matrix(logits, "logits")
    if logits.shape[0] < splits:
        raise InputError(f"the inception score over {splits} splits needs at least {splits} clips, got {logits.shape[0]}")
    logits = logits[np.random.RandomState(seed).permutation(logits.shape[0])]
    probs = softmax(logits)
    log_probs = np.log(np.clip(probs, np.finfo(np.float64).tiny, None))
    chunk = -(-logits.shape[0] // splits)
    scores = []
    for start in range(0, logits.shape[0], chunk):
        p, log_p = probs[start : start + chunk], log_probs[start : start + chunk]
        marginal = p.mean(axis=0, keepdims=True)
        scores.append(np.exp((p * (log_p - np.log(marginal))).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def cosine_per_pair(audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of each L2-normalised audio row with its text row."""
    audio = _as_matrix(audio_embeddings, "audio embeddings")
    text = _as_matrix(text_embeddings, "text embeddings")
    if audio.shape != text.shape:
        raise InputError(f"CLAP score needs one caption per clip: audio {audio.shape} vs text {text.shape}")
    audio = audio / np.linalg.norm(audio, axis=1, keepdims=True).clip(1e-12)
    text = text / np.linalg.norm(text, axis=1, keepdims=True).clip(1e-12)
    return (audio * text).sum(axis=1)


def clap_score(audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> float:
    """CLAP score: the mean cosine of matched audio and caption embeddings."""
    return float(cosine_per_pair(audio_embeddings, text_embeddings).mean())


def _as_matrix(values: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise InputError(f"{what}: expected a non-empty (items, features) array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return matrix
