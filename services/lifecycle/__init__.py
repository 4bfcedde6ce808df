# A compiled build of the hot modules (make install) is used only while it matches their sources.
from services.lifecycle.compiled_guard import install as _install_compiled_guard

_install_compiled_guard()
