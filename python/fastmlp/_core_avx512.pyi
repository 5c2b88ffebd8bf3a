# Type stubs: the same API as the baseline build.
from fastmlp._core_baseline import Trainer as Trainer
from fastmlp._core_baseline import adam_step_rate as adam_step_rate
from fastmlp._core_baseline import all_finite as all_finite
from fastmlp._core_baseline import backward as backward
from fastmlp._core_baseline import build_info as build_info
from fastmlp._core_baseline import capabilities as capabilities
from fastmlp._core_baseline import device_count as device_count
from fastmlp._core_baseline import forward as forward
