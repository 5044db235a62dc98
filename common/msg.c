#include "common/msg.h"
