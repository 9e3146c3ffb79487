"""An unpickler that resolves only an explicit allow-list of globals, to safe stand-ins."""
from __future__ import annotations

import pickle
import reprlib
from typing import Any, Callable, ClassVar, Mapping, Optional

# What CPython's unpickler raises on malformed or truncated input besides UnpicklingError
# (MemoryError: a declared length the file cannot hold; RecursionError: absurd nesting).
MALFORMED = (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
             MemoryError, RecursionError, UnicodeDecodeError)

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def short_repr(value: Any) -> str:
    """repr(value) cut to a few dozen characters, for error messages about untrusted values."""
    return _REPR.repr(value)


class Global:
    """A permitted pickle global: calls `func`, or is an inert marker carrying `payload`.

    It refuses BUILD (pickle's attribute-setting opcode), so a pickle cannot tamper with it.
    """

    __slots__ = ("name", "func", "payload")

    def __init__(self, name: str, func: Optional[Callable[..., Any]] = None, payload: Any = None):
        self.name, self.func, self.payload = name, func, payload

    def __call__(self, *args: Any) -> Any:
        if self.func is None:
            raise pickle.UnpicklingError(f"{self.name} may not be called here")
        try:
            return self.func(*args)
        except TypeError as error:
            raise pickle.UnpicklingError(f"bad arguments to {self.name}: {error}") from error

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"refusing to set state on {self.name}")

    def __repr__(self) -> str:
        return f"<pickle global {self.name}>"


class Inert:
    """Stand-in for a global whose objects are read past but never used: calling it, building it or
    filling it does nothing, so nothing of the pickle's own code is imported or run."""

    __slots__ = ()
    global_name: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any):
        del args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> "Inert":
        return self

    def __setstate__(self, state: Any) -> None:
        del state

    def append(self, item: Any) -> None:
        del item

    def extend(self, items: Any) -> None:
        del items

    def __setitem__(self, key: Any, value: Any) -> None:
        del key, value


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class returns only the objects of `allowed`.

    `allowed` maps (module, name) to the object to use instead of the real global; a global whose
    dotted name starts with one of `inert_prefixes` becomes an Inert subclass; any other global
    raises pickle.UnpicklingError naming it, before anything is imported or called.
    Malformed input of any kind also ends in pickle.UnpicklingError.
    """

    def __init__(self, file, allowed: Mapping[tuple[str, str], Any], what: str, inert_prefixes: tuple[str, ...] = ()):
        super().__init__(file)
        self._allowed = allowed
        self._what = what
        self._inert_prefixes = inert_prefixes
        self._inert: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[module, name]
        except KeyError:
            dotted = f"{module}.{name}"
            if dotted.startswith(self._inert_prefixes):
                if dotted not in self._inert:
                    self._inert[dotted] = type(name, (Inert,), {"__slots__": (), "global_name": dotted})
                return self._inert[dotted]
            raise pickle.UnpicklingError(
                f"refusing to load global {short_repr(module)[1:-1]}.{short_repr(name)[1:-1]}: "
                f"it is not part of {self._what}") from None

    def load(self) -> Any:
        try:
            return super().load()
        except MemoryError:
            raise pickle.UnpicklingError("malformed pickle: it declares an object larger than memory") from None
        except MALFORMED as error:
            raise pickle.UnpicklingError(
                f"malformed pickle ({type(error).__name__}: {short_repr(str(error))[1:-1]})") from None


def load_restricted(file, allowed: Mapping[tuple[str, str], Any], what: str, inert_prefixes: tuple[str, ...] = ()) -> Any:
    """Unpickles one object from `file`, resolving globals only through `allowed` (and `inert_prefixes`)."""
    return RestrictedUnpickler(file, allowed, what, inert_prefixes).load()
