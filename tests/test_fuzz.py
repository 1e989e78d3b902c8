"""Property-based fuzzing (hypothesis) of the two inputs a station takes from outside.

* Frames: any array (shape, dtype, contents) or non-array into the pipeline never
  raises, always gets a verdict, and garbage (nothing built like a mask: noise,
  flat fields, gradients, stripes, random blocks of colour) is never accepted.
* Configuration: any table of keys and values, from the real sections' field names
  or made up, either validates into a :class:`StationConfig` or raises
  :class:`ConfigError` whose every line starts with the offending key, never any
  other exception. Arbitrary text written as ``station.toml`` likewise.

Each property runs a bounded number of examples with no deadline, so the default
suite stays fast on a shared machine; ``--hypothesis-seed`` reproduces a failure.
"""

from __future__ import annotations

import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import BaseModel

from station.config import ConfigError, StationConfig, load_config
from vision.pipeline import InspectionContext, analyse_frame, inspect_frame
from vision.spec import PrototypeSpec
from vision.synth import SimCamera

VERDICTS = frozenset({"accept", "reject", "no_mask", "error"})
#: Full-size frames cost a real inspection each (~0.1-0.5 s here): fewer examples.
FULL_FRAME_EXAMPLES = 40
SMALL_INPUT_EXAMPLES = 100
CONFIG_EXAMPLES = 100
MAX_SMALL_SIDE_PX = 48
MAX_BLOCKS = 12

FAST = settings(
    max_examples=SMALL_INPUT_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@lru_cache(maxsize=1)
def ctx() -> InspectionContext:
    return InspectionContext.create(SimCamera().calibration(), PrototypeSpec())


def frame_size() -> tuple[int, int]:
    """The calibrated (width, height) in pixels: only frames of this size are measured."""
    width, height = ctx().calibration.image_size
    return int(width), int(height)


def check_result(result: Any) -> None:
    assert result.verdict in VERDICTS
    assert "total" in result.stage_ms
    if result.verdict == "error":
        assert result.message and result.defect_codes, "an error says why"


# -- frames -----------------------------------------------------------------------------
DTYPES = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
    ]
)


@st.composite
def small_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any rank 0-4 and dtype, small enough to be drawn element by element."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=MAX_SMALL_SIDE_PX))
    return draw(hnp.arrays(draw(DTYPES), shape))


NOT_ARRAYS = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=64),
    st.lists(st.integers(0, 255), max_size=16),
    st.lists(st.lists(st.integers(0, 255), max_size=4), max_size=4),
)


@FAST
@given(image=st.one_of(small_arrays(), NOT_ARRAYS))
def test_any_small_input_is_an_error_verdict_and_never_raises(image: Any) -> None:
    """Nothing but a frame of the calibrated size can be measured: the rest is ``error``."""
    result = inspect_frame(image, ctx())
    check_result(result)
    assert result.verdict == "error"


@st.composite
def garbage_frames(draw: st.DrawFn) -> np.ndarray:
    """A frame of the calibrated size holding no mask: flat, noise, gradient, stripes or blocks.

    The pixels are made by numpy from a drawn seed (a 3-megapixel array drawn element by
    element would take minutes); the layout, dtype and channels are drawn by hypothesis.
    """
    width, height = frame_size()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["flat", "noise", "gradient", "stripes", "blocks"]))
    level = draw(st.integers(0, 255))
    if kind == "flat":
        image = np.full((height, width, 3), level, np.uint8)
    elif kind == "noise":
        spread = draw(st.integers(1, 128))
        noisy = rng.normal(level, spread, (height, width, 3))
        image = np.clip(noisy, 0, 255).astype(np.uint8)
    elif kind == "gradient":
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
        if draw(st.booleans()):
            image = np.ascontiguousarray(image.transpose(1, 0, 2)[:height, :width])
            image = np.resize(image, (height, width, 3))
    elif kind == "stripes":
        period_px = draw(st.integers(2, 400))
        on = (np.arange(width) // max(1, period_px // 2)) % 2 == 0
        image = np.where(on[None, :, None], level, 255 - level).astype(np.uint8)
        image = np.broadcast_to(image, (height, width, 3)).copy()
    else:
        image = np.full((height, width, 3), draw(st.integers(0, 60)), np.uint8)
        for _ in range(draw(st.integers(1, MAX_BLOCKS))):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            w, h = int(rng.integers(10, width // 2)), int(rng.integers(10, height // 2))
            image[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    form = draw(st.sampled_from(["bgr", "grey", "bgra", "uint16"]))
    if form == "grey":
        return np.ascontiguousarray(image[:, :, 1])
    if form == "bgra":
        alpha = np.full((height, width, 1), 255, np.uint8)
        return np.concatenate([image, alpha], axis=2)
    if form == "uint16":
        return image.astype(np.uint16) * 257
    return image


@settings(
    max_examples=FULL_FRAME_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(image=garbage_frames())
def test_garbage_frames_get_a_verdict_and_are_never_accepted(image: np.ndarray) -> None:
    analysis = analyse_frame(image, ctx())
    check_result(analysis.result)
    assert analysis.result.verdict != "accept", analysis.result.defects


@FAST
@given(
    shape=st.sampled_from(["transposed", "one_row_short", "five_channels", "flat_vector"]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
)
def test_almost_calibrated_frames_are_errors(shape: str, dtype: type) -> None:
    """Off by one row, transposed or with odd channels: an error naming the problem."""
    width, height = frame_size()
    dims = {
        "transposed": (width, height, 3),
        "one_row_short": (height - 1, width, 3),
        "five_channels": (height, width, 5),
        "flat_vector": (height * width * 3,),
    }[shape]
    result = inspect_frame(np.zeros(dims, dtype), ctx())
    check_result(result)
    assert result.verdict == "error"


# -- configuration ---------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.text(alphabet="a/.\\", min_size=200, max_size=5000),  # over-long paths
    st.sampled_from(["", " ", "0", "-1", "1e309", "nan", "true", "../../etc/passwd", "\x00"]),
)
ANY_VALUE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
JUNK_KEYS = st.text(min_size=1, max_size=16)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models an annotation may hold (``X``, ``X | None``, ``list[X | Y]``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _literals_in(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    out: list[Any] = []
    for arg in typing.get_args(annotation):
        out += _literals_in(arg)
    return out


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return False


def table_for(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A TOML table for ``model``: some of its keys (good, bad or nested values), maybe junk."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        choices: list[st.SearchStrategy[Any]] = [ANY_VALUE]
        if info.default is not None and not callable(info.default):
            choices.append(st.just(info.default))
        literals = _literals_in(info.annotation)
        if literals:
            choices.append(st.sampled_from(literals))
        if depth < 2:
            for sub in _models_in(info.annotation):
                table = table_for(sub, depth + 1)
                choices.append(st.lists(table, max_size=2) if _is_list(info.annotation) else table)
        optional[name] = st.one_of(choices)
    known = st.fixed_dictionaries({}, optional=optional)
    junk = st.dictionaries(JUNK_KEYS, ANY_VALUE, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, junk | st.just({}))


CONFIG_TABLES = table_for(StationConfig)


def check_config_error(err: ConfigError, data: dict[str, Any]) -> None:
    """Each line is "key.path: problem" for a key of ``data``, or "(top level): ..."."""
    assert err.problems, "an error lists at least one problem"
    heads = ["(top level): "] + [f"{key}{sep}" for key in data for sep in (": ", ".")]
    for problem in err.problems:
        assert any(problem.startswith(h) for h in heads), (problem, sorted(data))


#: A path component longer than any file system allows (NAME_MAX is 255 on ext4).
TOO_LONG_NAME = "a" * 300


@settings(max_examples=CONFIG_EXAMPLES, deadline=None)
@given(data=CONFIG_TABLES)
# Found by this test: is_file()/is_dir() raise OSError (ENAMETOOLONG) out of validators.
@example(data={"inspection": {"spec_path": TOO_LONG_NAME}})
@example(data={"inspection": {"calibration_path": TOO_LONG_NAME}})
@example(data={"camera": {"source": "folder", "folder": TOO_LONG_NAME}})
def test_config_tables_validate_or_name_the_bad_key(data: dict[str, Any]) -> None:
    try:
        config = load_config(overrides=data)
    except ConfigError as err:
        check_config_error(err, data)
    else:
        assert isinstance(config, StationConfig)


@settings(max_examples=CONFIG_EXAMPLES, deadline=None)
@given(section=st.sampled_from(sorted(StationConfig.model_fields)), value=ANY_VALUE)
def test_a_section_that_is_not_a_table_is_named(section: str, value: Any) -> None:
    try:
        load_config(overrides={section: value})
    except ConfigError as err:
        check_config_error(err, {section: value})


@pytest.fixture(scope="module")
def toml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toml")


@settings(max_examples=CONFIG_EXAMPLES, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.sampled_from(list(StationConfig.model_fields)).map(
            lambda s: f'[{s}]\nport = 1\nx = "{"a" * 300}"\n'
        ),
    )
)
def test_any_text_as_station_toml_validates_or_is_a_config_error(text: str, toml_dir: Path) -> None:
    path = toml_dir / "station.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as err:
        assert err.problems and str(path) in str(err)


@pytest.mark.parametrize("name", ["missing.toml", TOO_LONG_NAME + ".toml", ""])
def test_an_unusable_config_path_is_a_config_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / name)
    assert err.value.problems
