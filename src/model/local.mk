# Models: graph of nodes over an activation arena, node types, builders,
# and the safetensors format of their checkpoints.
libqgate_la_SOURCES += \
	src/model/graph.h src/model/graph.c src/model/grad_plan.c src/model/nodes.h src/model/nodes.c \
	src/model/nodes_quant.h src/model/nodes_quant.c \
	src/model/nodes_cg.h src/model/nodes_cg.c \
	src/model/wquant.h src/model/wquant.c src/model/wquant_grid.c \
	src/model/wquant_bsq.h src/model/wquant_bsq.c src/model/nodes_qact.c \
	src/model/resnet.h src/model/resnet.c \
	src/model/safetensors.h src/model/safetensors.c \
	src/model/build.h src/model/build.c src/model/nodes_shuffle.h src/model/nodes_shuffle.c \
	src/model/imagenet.h src/model/resnet18.c src/model/shufflenet.c \
	src/model/qbits.h src/model/qbits.c src/model/nodes_pq.h src/model/nodes_pq.c \
	src/model/resnet_preact.c \
	src/model/vgg.h src/model/vgg.c src/model/nodes_dropout.c

check_PROGRAMS += tests/test_model
tests_test_model_SOURCES = tests/test_model.c
tests_test_model_CFLAGS = $(TEST_CFLAGS)
tests_test_model_LDADD = $(TEST_LDADD)
TESTS += tests/test_model

check_PROGRAMS += tests/test_pgconv
tests_test_pgconv_SOURCES = tests/test_pgconv.c
tests_test_pgconv_CFLAGS = $(TEST_CFLAGS)
tests_test_pgconv_LDADD = $(TEST_LDADD)
TESTS += tests/test_pgconv
EXTRA_DIST += tests/data/golden/pgconv_s1_dense.json tests/data/golden/pgconv_s1_spbp.json \
	tests/data/golden/pgconv_s2_dense.json tests/data/golden/pgconv_s2_spbp.json \
	tests/tools/gen_pg_golden.py

check_PROGRAMS += tests/test_cgconv
tests_test_cgconv_SOURCES = tests/test_cgconv.c
tests_test_cgconv_CFLAGS = $(TEST_CFLAGS)
tests_test_cgconv_LDADD = $(TEST_LDADD)
TESTS += tests/test_cgconv
EXTRA_DIST += tests/data/golden/cgconv_group_dense.json tests/data/golden/cgconv_group_spbp.json \
	tests/data/golden/cgconv_first_dense.json tests/data/golden/cgconv_first_spbp_s2.json \
	tests/data/golden/cgconv_shuffle_spbp_s2.json tests/tools/gen_cg_golden.py \
	tests/tools/check_cg_resnet_torch.py

# ImageNet-style models (resnet18, shufflenet_v2_x0_5): builder and node
# tests, and the qgate side of tests/tools/check_torchvision.py.
check_PROGRAMS += tests/test_imagenet
tests_test_imagenet_SOURCES = tests/test_imagenet.c
tests_test_imagenet_CFLAGS = $(TEST_CFLAGS)
tests_test_imagenet_LDADD = $(TEST_LDADD)
TESTS += tests/test_imagenet
check_PROGRAMS += tests/tools/imagenet_logits
tests_tools_imagenet_logits_SOURCES = tests/tools/imagenet_logits.c
tests_tools_imagenet_logits_LDADD = libqgate_internal.la $(OPENCL_LIBS) $(JANSSON_LIBS) -lm
EXTRA_DIST += tests/tools/check_torchvision.py

# VGG16-bn and the dropout node; PyTorch golden and strict load
# (tests/tools/vgg_torch.py).
check_PROGRAMS += tests/test_vgg
tests_test_vgg_SOURCES = tests/test_vgg.c
tests_test_vgg_CFLAGS = $(TEST_CFLAGS)
tests_test_vgg_LDADD = $(TEST_LDADD)
TESTS += tests/test_vgg
EXTRA_DIST += tests/data/golden/vgg_step.json tests/tools/vgg_torch.py
