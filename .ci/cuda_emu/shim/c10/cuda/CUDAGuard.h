// Emulator shim (see ../../emu_c10_cuda.h).
#pragma once
#include "emu_c10_cuda.h"
