# src/data: file lists of this area (see Makefile.am).
