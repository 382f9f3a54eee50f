# src/quant: file lists of this area (see Makefile.am).
