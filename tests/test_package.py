import subprocess
import sys


def _python(code):
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_selects_keras_2_without_the_user_setting_anything():
    proc = _python("import zippy_tf, tensorflow as tf, larq; print(tf.keras.layers.Layer.__module__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("tf_keras")


def test_keras_3_imported_first_gives_a_clear_error():
    proc = _python("import tensorflow\nimport zippy_tf")
    assert proc.returncode != 0
    assert "import zippy_tf first" in proc.stderr.strip().splitlines()[-1]
