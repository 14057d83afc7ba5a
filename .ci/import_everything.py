"""Plain-install check: run from outside the source tree with the built wheel installed (no extras).

Imports every module of the installed package (an optional dependency imported at module level fails here), checks
that the package came from site-packages rather than a source checkout, and that the bundled data files are present.
"""

import importlib
import os
import pkgutil
import sys

import vitpose_plus

location = os.path.dirname(vitpose_plus.__file__)
if "site-packages" not in location:
    sys.exit(f"vitpose_plus was imported from {location}, not from the installed wheel")

names = sorted(m.name for m in pkgutil.walk_packages(vitpose_plus.__path__, prefix="vitpose_plus.")
               if not m.name.endswith(".__main__"))  # __main__ runs the CLI
for name in names:
    importlib.import_module(name)

for data_file in ("modeling/keypoint_specs.json", "training/configs/synthetic.yaml"):
    if not os.path.isfile(os.path.join(location, data_file)):
        sys.exit(f"the wheel lacks {data_file}")

optional = sorted(n for n in ("matplotlib", "onnx", "onnxruntime", "pytest") if n in sys.modules)
if optional:
    sys.exit(f"importing the package pulled optional dependencies {optional}")
print(f"imported {len(names)} modules of vitpose_plus from {location}")
