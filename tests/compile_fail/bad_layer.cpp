// Must not compile: a "layer" that does not derive from gradsim::Layer<T>.
#include <gradsim/gradsim.hpp>

template <class T>
struct NotALayer {
  explicit NotALayer(const gradsim::LayerArgs&) {}
};
GRADSIM_LAYER("not_a_layer", NotALayer)
