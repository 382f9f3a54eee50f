# Cairo plots (PNG, SVG, PDF by extension): training curves, per-layer
# bars, weight histograms, bit-plane heat maps.
libqgate_la_SOURCES += src/plot/plot.h src/plot/plot.c
QG_LIB_DEPS += $(CAIRO_LIBS)
AM_CFLAGS += $(CAIRO_CFLAGS)

check_PROGRAMS += tests/test_plot
tests_test_plot_SOURCES = tests/test_plot.c
tests_test_plot_CFLAGS = $(TEST_CFLAGS)
tests_test_plot_LDADD = $(TEST_LDADD)
TESTS += tests/test_plot
