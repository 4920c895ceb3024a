"""models.lean_import: CompressAI loads without torchvision / torch-geometric, which stay importable."""

import subprocess
import sys

PROBE = """
import sys
import models.codec
print(sorted(n for n in ('torchvision', 'torch_geometric') if n in sys.modules))
import torchvision.transforms
print(type(torchvision.transforms.Resize).__name__, torchvision.__file__.endswith('__init__.py'))
"""


def test_codec_import_skips_unused_packages_and_leaves_them_importable():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "type True"]


def test_already_imported_real_package_is_kept():
    probe = "import torchvision, models.codec, compressai.registry as r; print('Resize' in r.TRANSFORMS, r.TRANSFORMS['Resize'].__module__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "torchvision.transforms.transforms"]
