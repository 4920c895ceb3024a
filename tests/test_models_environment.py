"""models: CompressAI loads without torchvision / torch-geometric / pandas / scipy.stats; ladder and weights folders follow the environment."""

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from pathlib import Path
import models.codec
print(sorted(n for n in ('torchvision', 'torch_geometric') if n in sys.modules))
import torchvision.transforms
print(type(torchvision.transforms.Resize).__name__, torchvision.__file__.endswith('__init__.py'))
"""


def test_codec_import_skips_unused_packages_and_leaves_them_importable():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "type True"]


DEFERRED_PROBE = """
import sys
import numpy as np
from models.codec import decode_stream, encode_image
from models.conditional import LeanGaussianConditional
from models.ladder import load_ladder
image = np.full((64, 64, 3), 100, np.uint8)
decode_stream(encode_image(load_ladder('psnr').entries[2], image))
LeanGaussianConditional(None).update_scale_table(__import__('torch').tensor([0.5, 2.0]))  # builds tables
loaded = lambda: sorted(n for n in ('pandas', 'scipy.stats') if n in sys.modules)
print(loaded())
import compressai.entropy_models.entropy_models as em
print(round(float(em.scipy.stats.norm.ppf(0.975)), 4), loaded())
import compressai.datasets.pointcloud.shapenet as sn
print(sn.pd.DataFrame({'a': [1, 2]}).shape, sn.pd.__version__ == sys.modules['pandas'].__version__)
import pandas.testing, pandas
print(pandas.testing.assert_frame_equal.__module__, type(pandas).__name__)
"""


def test_coding_never_loads_pandas_or_scipy_stats_but_both_load_when_used():
    out = subprocess.run([sys.executable, "-c", DEFERRED_PROBE], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "1.96 ['scipy.stats']", "(2, 1) True", "pandas.testing module"]


def test_already_imported_real_package_is_kept():
    probe = "import torchvision, models.codec, compressai.registry as r; print('Resize' in r.TRANSFORMS, r.TRANSFORMS['Resize'].__module__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "torchvision.transforms.transforms"]


def test_ladder_and_weights_folders_follow_the_environment(tmp_path):
    """CLIC_LADDER_DIR / CLIC_WEIGHTS_DIR: how worker processes learn a custom ladder folder."""
    (tmp_path / "mine.toml").write_text((Path(__file__).resolve().parents[1] / "models" / "ladders" / "psnr.toml")
                                        .read_text().replace('name = "psnr"', 'name = "mine"'))
    probe = "import models.ladder as m; print(sorted(m.available_ladders()), m.WEIGHTS_DIR)"
    env = {**os.environ, "CLIC_LADDER_DIR": str(tmp_path), "CLIC_WEIGHTS_DIR": str(tmp_path / "w")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["['mine']", str(tmp_path / "w")]
