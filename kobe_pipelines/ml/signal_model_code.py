"""Entry file of the `SignalModel` pyfunc, saved with every model ("models from code").

MLflow executes this file when it loads a KOBE model, instead of unpickling a Python object.
It needs `kobe_pipelines` importable where the model is loaded.
"""

from mlflow.models import set_model

from kobe_pipelines.ml.ensemble import SignalModel

set_model(SignalModel())
