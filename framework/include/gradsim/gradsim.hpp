// The gradsim plugin SDK: everything a plugin author includes.
#pragma once

#include "abi.hpp"
#include "activation.hpp"
#include "cell.hpp"
#include "compute.hpp"
#include "initializer.hpp"
#include "layer.hpp"
#include "loss.hpp"
#include "mitigation.hpp"
#include "optimizer.hpp"
#include "params.hpp"
#include "plugin.hpp"
#include "random.hpp"
#include "register.hpp"
#include "tensor.hpp"
