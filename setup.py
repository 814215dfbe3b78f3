"""Ships the repository's top-level conf/ inside the wheel as ``rsn_lightning/conf``.

The layout keeps Hydra's configs at the repository's top (Lightning+Hydra-template style), outside the
package; without this step a non-editable ``pip install .`` or a built wheel would carry no YAML and the
console scripts would find no configs outside a source checkout. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        # an editable install reads conf/ from the checkout itself (cli/common.py: config_dir)
        if not self.editable_mode:
            self.copy_tree("conf", str(Path(self.build_lib) / "rsn_lightning" / "conf"))


setup(cmdclass={"build_py": BuildPyWithConf})
