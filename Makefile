# libping32dlp's C library: build and install libping32dlp.so / .a, ping32dlp.h and ping32dlp.pc.
#
#   make                                 # cargo build --release -p ping32dlp-ffi
#   sudo make install                    # into /usr/local (runs ldconfig); builds first if
#                                        # nothing is built (run `make` as yourself first when
#                                        # cargo is not on root's PATH)
#   make install PREFIX=$HOME/.local     # anywhere; then PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
#   make uninstall PREFIX=...
#
# DESTDIR is honoured for packaging. The Rust toolchain (cargo) must be on PATH.
#
# What is installed is made for linking into other programs: the shared library is stripped
# (its debug information goes to LIBDIR/.debug/, found by gdb through a debuglink), and the
# static library is one relocatable object in which only the ping32dlp_* functions are global:
# the SQLite, Rust standard library and crate symbols inside it are local, so a program that
# also links its own SQLite or another Rust static library gets no clashes. Needs binutils
# (ld, objcopy, ar). Licence notices for everything bundled and a CycloneDX SBOM go to
# share/doc/libping32dlp (made by scripts/licenses.py).

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
DOCDIR     ?= $(PREFIX)/share/doc/libping32dlp
CARGO      ?= cargo
TARGET_DIR ?= $(CURDIR)/target

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
RELEASE := $(TARGET_DIR)/release
STAGE   := $(TARGET_DIR)/ffi-stage

.PHONY: all build install uninstall
all: build

build:
	CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) build --release --locked -p ping32dlp-ffi

$(RELEASE)/libping32dlp.so $(RELEASE)/libping32dlp.a:
	CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) build --release --locked -p ping32dlp-ffi

# The stripped shared library and its separate debug information.
$(STAGE)/libping32dlp.so: $(RELEASE)/libping32dlp.so
	mkdir -p $(STAGE)
	objcopy --only-keep-debug $< $(STAGE)/libping32dlp.so.$(VERSION).debug
	objcopy --strip-unneeded --remove-section=.llvmbc --remove-section=.llvmcmd \
	    --add-gnu-debuglink=$(STAGE)/libping32dlp.so.$(VERSION).debug $< $@

# The static library as one object with only ping32dlp_* global (ffi/symbols.txt).
$(STAGE)/libping32dlp.a: $(RELEASE)/libping32dlp.a ffi/symbols.txt
	mkdir -p $(STAGE)
	ld -r -o $(STAGE)/all.o --whole-archive $<
	# COMDAT groups (`DW.ref.rust_eh_personality`) are merged by name across objects: ours
	# get private names, or a linker keeping our (now local) copy would leave another Rust
	# library's references undefined.
	readelf -g --wide $(STAGE)/all.o | sed -n 's/.*\[\(.*\)\] contains.*/\1 ping32dlp.private.\1/p' \
	    > $(STAGE)/groups.txt
	objcopy --keep-global-symbols=ffi/symbols.txt --redefine-syms=$(STAGE)/groups.txt --strip-debug \
	    --remove-section=.llvmbc --remove-section=.llvmcmd $(STAGE)/all.o $(STAGE)/ping32dlp.o
	rm -f $@ $(STAGE)/all.o
	ar rcs $@ $(STAGE)/ping32dlp.o

install: $(STAGE)/libping32dlp.so $(STAGE)/libping32dlp.a
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LIBDIR)/.debug $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR)
	install -m 0755 $(STAGE)/libping32dlp.so $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(VERSION)
	install -m 0644 $(STAGE)/libping32dlp.so.$(VERSION).debug $(DESTDIR)$(LIBDIR)/.debug/libping32dlp.so.$(VERSION).debug
	ln -sf libping32dlp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(MAJOR)
	ln -sf libping32dlp.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libping32dlp.so
	install -m 0644 $(STAGE)/libping32dlp.a $(DESTDIR)$(LIBDIR)/libping32dlp.a
	install -m 0644 include/ping32dlp.h $(DESTDIR)$(INCLUDEDIR)/ping32dlp.h
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 ffi/THIRD_PARTY_NOTICES.md ffi/sbom.cdx.json $(DESTDIR)$(DOCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' ffi/ping32dlp.pc.in > $(DESTDIR)$(PCDIR)/ping32dlp.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi
	@echo "installed libping32dlp $(VERSION) into $(DESTDIR)$(PREFIX)"
	@case "$$(pkg-config --variable pc_path pkg-config 2>/dev/null)" in \
	  *"$(PCDIR)"*) ;; \
	  *) echo "note: export PKG_CONFIG_PATH=$(PCDIR) (and LD_LIBRARY_PATH=$(LIBDIR) to run)";; esac

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libping32dlp.so $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libping32dlp.a \
	      $(DESTDIR)$(LIBDIR)/.debug/libping32dlp.so.$(VERSION).debug \
	      $(DESTDIR)$(DOCDIR)/THIRD_PARTY_NOTICES.md $(DESTDIR)$(DOCDIR)/sbom.cdx.json \
	      $(DESTDIR)$(INCLUDEDIR)/ping32dlp.h $(DESTDIR)$(PCDIR)/ping32dlp.pc
