"""stackform.registry: the named, typed catalogue of Transformer blocks."""

from .core import (
    KINDS,
    BlockParams,
    Entry,
    add_kind,
    closest,
    ensure_loaded,
    example_params,
    get,
    import_plugins,
    list_blocks,
    names,
    params_of,
    register,
    unimported,
    unknown_message,
    unregister,
)
from .dims import Dims
from .errors import RegistryError, StackformError
from .text import printable

__all__ = [
    "KINDS", "BlockParams", "Dims", "Entry", "RegistryError", "StackformError", "add_kind", "closest", "ensure_loaded", "example_params", "get",
    "import_plugins", "list_blocks", "names", "params_of", "printable", "register", "unimported", "unknown_message",
    "unregister",
]
