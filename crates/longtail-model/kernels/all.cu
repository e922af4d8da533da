// The one translation unit build.rs compiles into the embedded fatbin: every kernel of longtail.
#include "dropout.cu"
#include "adamw.cu"
