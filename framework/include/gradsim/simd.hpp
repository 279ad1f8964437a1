// Runtime dispatch for loops over arrays: GRADSIM_CLONES before a function compiles it for
// three x86-64 levels (AVX-512, AVX2+FMA, baseline SSE2); the dynamic loader picks the best
// one the CPU supports. The core's loops use it, and so do the kernels the SDK's headers
// generate inside plugins (ElementwiseActivation), so plugins built without special flags
// still run vectorised on every machine. Sanitizer builds compile one version (their
// runtimes start after the loader's resolvers run).
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GRADSIM_NO_CLONES
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GRADSIM_NO_CLONES
#endif
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADSIM_NO_CLONES)
#define GRADSIM_CLONES [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define GRADSIM_CLONES
#endif
