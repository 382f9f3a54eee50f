# src/tensor: device tensors (shape, dtype, buffer + element offset).
libqgate_la_SOURCES += src/tensor/tensor_impl.h src/tensor/tensor.c
qgateinc_HEADERS += include/qgate/tensor.h
