"""An unpickler that resolves only an explicit allow-list of globals, to safe stand-ins."""
from __future__ import annotations

import pickle
from typing import Any, Callable, Mapping, Optional


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


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class returns only the objects of `allowed`.

    `allowed` maps (module, name) to the object to use instead of the real global; any other
    global raises pickle.UnpicklingError naming it, before anything is imported or called.
    """

    def __init__(self, file, allowed: Mapping[tuple[str, str], Any], what: str):
        super().__init__(file)
        self._allowed = allowed
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: it is not part of {self._what}"
            ) from None


def load_restricted(file, allowed: Mapping[tuple[str, str], Any], what: str) -> Any:
    """Unpickles one object from `file`, resolving globals only through `allowed`."""
    return RestrictedUnpickler(file, allowed, what).load()
