"""Type stubs of weft's native module (python/src/lib.rs)."""

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, "os.PathLike[str]"]
Input = Union[str, bytes, bytearray, "os.PathLike[str]", "Smiles", "Image"]
"""str is text; bytes or a path is an image; Smiles a molecule."""

class WeftError(Exception):
    """Base class of every weft error."""

class InvalidConfig(WeftError):
    """An option or argument is out of range or malformed."""

class InvalidInput(WeftError):
    """An input cannot be used (an image that does not decode, a bad SMILES, a duplicate id)."""

class NotFound(WeftError):
    """No such collection, item or bundle."""

class CorruptedData(WeftError):
    """Stored data is damaged or in a format this weft cannot read."""

class BundleError(WeftError):
    """A model bundle is malformed, cannot be imported, or is not the collection's."""

class StorageError(WeftError):
    """A file could not be read or written."""

class Locked(WeftError):
    """Another writer holds the collection."""

class Busy(WeftError):
    """The encoder queue is full; retry shortly."""

class RuntimeUnavailable(WeftError):
    """ONNX Runtime is missing, cannot load, or failed."""

class ProviderUnavailable(WeftError):
    """The requested execution provider (CUDA) cannot run."""

class Smiles:
    """A molecule given as SMILES."""

    smiles: str
    def __init__(self, smiles: str) -> None: ...

class Image:
    """An image: a path or the bytes of an image file."""

    def __init__(self, source: Union[PathLike, bytes, bytearray]) -> None: ...

class Classification:
    """A zero-shot classification."""

    best: Optional[str]
    """The best label, or None when abstaining."""
    probabilities: Dict[str, float]
    """label -> probability, best first."""
    scores: Dict[str, float]
    """label -> cosine score, best first."""

class Hit:
    """One search hit."""

    id: str
    score: float
    global_score: float
    source: str
    payload: Any
    modality: str
    explanation: Optional[List[Dict[str, Any]]]

class Collection:
    """An open collection; thread-safe."""

    @property
    def path(self) -> str: ...
    @property
    def bundle(self) -> str: ...
    def __len__(self) -> int: ...
    def index(
        self,
        paths: Union[PathLike, Sequence[PathLike]],
        *,
        progress: Optional[Callable[[int, int, int], None]] = None,
    ) -> Dict[str, Any]:
        """Indexes files and folders incrementally; ids are the file paths."""
    def add(
        self,
        items: Sequence[Union[Tuple[str, Input], Tuple[str, Input, Optional[Dict[str, Any]]]]],
    ) -> Dict[str, int]:
        """Encodes and adds (id, input[, payload]) items in one durable commit."""
    def delete(self, ids: Sequence[str]) -> int:
        """Deletes items in one durable commit; returns how many existed."""
    def search(
        self,
        query: Optional[Input] = None,
        *,
        k: int = 10,
        scorer: Optional[str] = None,
        filter: Union[Dict[str, Any], str, None] = None,
        id: Optional[str] = None,
        explain: bool = False,
    ) -> List[Hit]:
        """The top k hits for a query, or for a stored item's id."""
    def classify(
        self, input: Input, labels: Sequence[str], *, top_k: Optional[int] = None
    ) -> Classification:
        """Zero-shot classification with the collection's bundle."""
    @overload
    def embed(self, inputs: Union[Input, Sequence[Input]]) -> npt.NDArray[np.float32]: ...
    @overload
    def embed(
        self, inputs: Union[Input, Sequence[Input]], *, tokens: bool
    ) -> Any: ...
    def flush(self) -> None: ...
    def verify(self) -> None: ...

class Engine:
    """ONNX Runtime, model bundles and shared batching encoders; thread-safe."""

    def __init__(
        self,
        project_dir: Optional[PathLike] = None,
        *,
        models_dir: Optional[PathLike] = None,
        ort_library: Optional[PathLike] = None,
        device: str = "cpu",
        allow_cpu_fallback: bool = False,
        threads: Optional[int] = None,
    ) -> None: ...
    @property
    def ort_version(self) -> str: ...
    @property
    def ort_library(self) -> str: ...
    def providers(self, bundle: str) -> Dict[str, str]: ...
    def open(
        self, path: PathLike, bundle: Optional[str] = None, *, read_only: bool = False
    ) -> Collection: ...
    def classify(
        self,
        input: Input,
        labels: Sequence[str],
        *,
        bundle: str,
        top_k: Optional[int] = None,
    ) -> Classification: ...
    @overload
    def embed(
        self, inputs: Union[Input, Sequence[Input]], *, bundle: str
    ) -> npt.NDArray[np.float32]:
        """(n, d) float32 global embeddings."""
    @overload
    def embed(
        self, inputs: Union[Input, Sequence[Input]], *, bundle: str, tokens: bool
    ) -> Tuple[npt.NDArray[np.float32], List[npt.NDArray[np.float32]]]:
        """With tokens=True also a list of (t, d) token matrices."""
