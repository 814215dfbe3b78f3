"""cli/config_checks.py directly: the shipped configs pass, bad values are all reported at once with
their keys, ``ckpt_path=last`` resolves or says where it looked, and the apps' wrapper turns a
user-facing error into exit status 2 without a traceback. (tests/reliability runs the same checks
through the console scripts.)"""

from __future__ import annotations

import pytest
from omegaconf import open_dict
from test_configs import compose_train

from rsn_lightning.cli.config_checks import exit_on_bad_input, resolve_last_checkpoint, validate_config
from rsn_lightning.errors import ConfigError


def test_the_quickstart_passes(tmp_path):
    validate_config(compose_train(tmp_path, ["experiment=quickstart"]), "train")


def test_every_bad_value_is_reported_at_once_with_its_key(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=quickstart", "data.batch_size=-4", "data.input_size=[100,128]",
                                   "model.optimizer.lr=0", "codec.decode=nearest", "trainer.accumulate_grad_batches=0"])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, "train")
    message = str(err.value)
    assert message.startswith("5 invalid config value(s), nothing was run:")
    for expected in ("data.batch_size=-4: expected an integer >= 1",
                     "data.input_size=[100, 128]: expected [W, H], two positive multiples of 32",
                     "model.optimizer.lr=0: expected a number in (0.0, 10.0]",
                     "codec.decode='nearest': expected one of ['authors', 'sign', 'dark']",
                     "trainer.accumulate_grad_batches=0: expected an integer >= 1"):
        assert expected in message


def test_a_key_that_moved_to_the_codec_is_named_with_its_new_place(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=quickstart", "+data.target_type=kernel"])
    with pytest.raises(ConfigError, match=r"data.target_type: this key moved to codec.target_type"):
        validate_config(cfg, "train")


def test_predict_checks_its_own_keys(tmp_path):
    cfg = compose_train(tmp_path, ["ckpt_path=model.ckpt", "input=images", "test.box_extension=[0.1]"],
                        config_name="predict")
    with pytest.raises(ConfigError, match=r"test.box_extension=\[0.1\]: expected \[x, y\], two numbers in \[0, 10\]"):
        validate_config(cfg, "predict")


def test_ckpt_path_last_resolves_to_the_run_folders_checkpoint_or_says_where_it_looked(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=quickstart", "ckpt_path=last"])
    folder = tmp_path / "run" / "checkpoints"
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.callbacks.model_checkpoint.dirpath = str(folder)
    with pytest.raises(ConfigError, match=f"ckpt_path=last: no last checkpoint at {folder / 'last.ckpt'}"):
        resolve_last_checkpoint(cfg)
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"")
    assert resolve_last_checkpoint(cfg) == str(folder / "last.ckpt")
    with open_dict(cfg):
        cfg.ckpt_path = "other.ckpt"
    assert resolve_last_checkpoint(cfg) == "other.ckpt"


def test_a_user_facing_error_exits_2_with_its_message_and_a_bug_keeps_its_traceback(capsys):
    def bad_config():
        raise ConfigError("1 invalid config value(s), nothing was run:\n  data.batch_size=-4: expected ...")

    with pytest.raises(SystemExit) as exit_info:
        exit_on_bad_input(bad_config)()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: 1 invalid config value(s)")

    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):
        exit_on_bad_input(bug)()
