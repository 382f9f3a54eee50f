# src/ops: file lists of this area (see Makefile.am).
