"""tilelab: cycle-accurate, bit-exact RTL simulation of CNN accelerator tiles and meshes."""

import time as _time

__version__ = "0.1.0"

#: When this process imported tilelab (the design cache compares source files' times with it).
LOADED_AT = _time.time()
