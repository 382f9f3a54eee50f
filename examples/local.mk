# examples/: programs that use libqgate only through its installed headers.
# They are built against the in-tree libqgate.so (public symbols only, so a
# use of an internal function fails to link) and run by make check.
noinst_PROGRAMS += examples/train_tiny
examples_train_tiny_SOURCES = examples/train_tiny.c
examples_train_tiny_CPPFLAGS = -I$(top_srcdir)/include -I$(top_builddir)/include
examples_train_tiny_CFLAGS = -std=c11 -pedantic -Wall -Wextra $(QG_WERROR)
examples_train_tiny_LDADD = libqgate.la
TESTS += examples/train_tiny

# tests/test_install.sh builds and runs the example again against a staged
# `make install DESTDIR=...` of this tree (make check) or against the real
# installation (make installcheck), using only pkg-config --cflags --libs qgate.
EXTRA_DIST += tests/test_install.sh
TESTS += tests/test_install.sh
TEST_EXTENSIONS += .sh
QG_INSTALL_TEST_ENV = CC='$(CC)' MAKE='$(MAKE)' QG_WERROR='$(QG_WERROR)' \
	QG_BUILDDIR='$(abs_top_builddir)' QG_SRCDIR='$(abs_top_srcdir)' QG_PREFIX='$(prefix)' \
	QG_BINDIR='$(bindir)' QG_LIBDIR='$(libdir)' QG_INCLUDEDIR='$(includedir)' \
	QG_VERSION='$(PACKAGE_VERSION)'
SH_LOG_COMPILER = env $(QG_INSTALL_TEST_ENV) $(SHELL)

installcheck-local:
	$(AM_V_at)env $(QG_INSTALL_TEST_ENV) QG_ROOT='$(DESTDIR)' $(SHELL) $(srcdir)/tests/test_install.sh
