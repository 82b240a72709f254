// Emulator shim (see emu_runtime.h).
#pragma once
#include "emu_runtime_api.h"
