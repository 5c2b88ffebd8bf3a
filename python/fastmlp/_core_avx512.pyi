# Type stubs: the same API as the baseline build.
from fastmlp._core_baseline import build_info as build_info
from fastmlp._core_baseline import forward as forward
from fastmlp._core_baseline import loss_and_gradients as loss_and_gradients
from fastmlp._core_baseline import train_epoch as train_epoch
