"""weft: an embedded cross-modal retrieval engine.

    import weft
    engine = weft.Engine(".weft")
    photos = engine.open("photos.weft", bundle="starter-vl")
    photos.index(".weft/data/photos")
    for hit in photos.search("a photo of a cat", k=5):
        print(f"{hit.score:.3f} {hit.id}")

Inputs: a ``str`` is text, ``bytes`` or an ``os.PathLike`` is an image,
``weft.Smiles("CCO")`` is a molecule, ``weft.Image(path_or_bytes)`` an image.
Every weft error is a ``weft.WeftError``; its subclasses say what kind.
The GIL is released while weft encodes, indexes and searches.
"""

from ._native import (
    Busy,
    BundleError,
    Classification,
    Collection,
    CorruptedData,
    Engine,
    Hit,
    Image,
    InvalidConfig,
    InvalidInput,
    Locked,
    NotFound,
    ProviderUnavailable,
    RuntimeUnavailable,
    Smiles,
    StorageError,
    WeftError,
    __version__,
)

__all__ = [
    "Busy",
    "BundleError",
    "Classification",
    "Collection",
    "CorruptedData",
    "Engine",
    "Hit",
    "Image",
    "InvalidConfig",
    "InvalidInput",
    "Locked",
    "NotFound",
    "ProviderUnavailable",
    "RuntimeUnavailable",
    "Smiles",
    "StorageError",
    "WeftError",
    "__version__",
]
