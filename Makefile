# libraft, kvd, kvctl: build, test, install, local cluster.
#
#   make              build the libraries and programs (into $(BUILD))
#   make check        install missing build dependencies, build, run all tests
#   make check-asan   the same under AddressSanitizer + UBSan (build-asan/)
#   make cluster      start a local 3-node cluster (N=5 for five)
#   make cluster-stop / cluster-wipe
#   make jepsen       2 min random faults on a real cluster (root; T=name)
#   make install PREFIX=/usr/local DESTDIR=   (and make uninstall)
#   make docs         HTML API reference into $(BUILD)/docs/html
#   make fmt          clang-format every C file
#   make sim SEEDS=N  run N simulation seeds (long runs)
#   make bench        print benchmark figures
#   make bench-core   entries/s through three in-memory cores
#   make mutants      build the simulation against broken cores
#   make bench-compare  kvd against etcd (REPS=2, QUICK=1; see the script)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
BUILD ?= build
CC ?= cc
VERSION := 0.1.0
SOVERSION := 0

PKGS := libuv libprotobuf-c lmdb libisal inih check

# Evaluated lazily so that `make deps` can install pkg-config first.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs libuv libprotobuf-c lmdb libisal 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
INIH_LIBS = $(shell pkg-config --libs inih 2>/dev/null)

OPT ?= -O2
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes
ifeq ($(SAN),1)
OPT := -O1
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
endif
CPPFLAGS += -D_GNU_SOURCE -Ilib/include -Ilib/src -I$(BUILD)/gen $(EXTRA_CPPFLAGS)
CFLAGS += -std=c11 $(OPT) -g $(WARN) -fPIC -fvisibility=hidden -MMD -MP \
	$(SANFLAGS) $(PKG_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS += -lpthread -lm

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)

LIB_SRCS := $(shell find lib/src -name '*.c' | sort)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) \
	$(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
SERVER_SRCS := $(wildcard server/*.c)
SERVER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SERVER_SRCS))
CLI_COMMON := $(filter-out cli/kvctl.c cli/kvbench.c,$(wildcard cli/*.c))
CLI_COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_COMMON))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TEST_HELPERS := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
TEST_HELPER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_HELPERS))
SIM_SRCS := $(wildcard tests/sim/*.c)
SIM_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIM_SRCS))

STATIC_LIB := $(BUILD)/lib/libraft.a
SHARED_LIB := $(BUILD)/lib/libraft.so.$(VERSION)
PROGRAMS :=
ifneq ($(SERVER_SRCS),)
PROGRAMS += $(BUILD)/bin/kvd
endif
ifneq ($(wildcard cli/kvctl.c),)
PROGRAMS += $(BUILD)/bin/kvctl
endif
ifneq ($(wildcard cli/kvbench.c),)
PROGRAMS += $(BUILD)/bin/kvbench
endif

.PHONY: kvd-bugs
.PHONY: all deps check check-asan check-tsan test sim cluster cluster-stop cluster-wipe \
	install uninstall fmt clean bench docs tests bench-kv bench-log \
	bench-node bench-core mutants bench-compare
.DEFAULT_GOAL := all

all: $(STATIC_LIB) $(SHARED_LIB) $(PROGRAMS)

deps:
	@scripts/deps.sh

# Generated protobuf-c sources: built, never committed.
$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen/proto
	protoc-c --c_out=$(BUILD)/gen $<

# Kept: otherwise make deletes them as intermediates after every build, and
# the next build makes them again. The unit tests' objects are reached only
# through the test_% pattern rule, so they are intermediates too. (A bare
# .SECONDARY: would keep every target, but only while no .SECONDARY: line
# names any.)
UNIT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(UNIT_SRCS))
.SECONDARY: $(PROTO_C) $(PROTO_H) $(UNIT_OBJS) $(TEST_HELPER_OBJS)

# Every object may include generated headers.
$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# The version script exports raft_* and kv_* only, whatever the objects
# (generated protobuf-c code included) leave visible.
$(SHARED_LIB): $(LIB_OBJS) lib/libraft.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libraft.so.$(SOVERSION) \
		-Wl,--version-script=lib/libraft.map $(LDFLAGS) -o $@ \
		$(LIB_OBJS) $(PKG_LIBS) $(LDLIBS)
	ln -sf libraft.so.$(VERSION) $(BUILD)/lib/libraft.so.$(SOVERSION)
	ln -sf libraft.so.$(SOVERSION) $(BUILD)/lib/libraft.so

$(BUILD)/bin/kvd: $(SERVER_OBJS) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(INIH_LIBS) $(LDLIBS)

$(BUILD)/bin/kvctl: $(BUILD)/obj/cli/kvctl.o $(CLI_COMMON_OBJS) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/bin/kvbench: $(BUILD)/obj/cli/kvbench.o $(CLI_COMMON_OBJS) \
		$(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# Unit tests link the static library so that they reach internals.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TEST_HELPER_OBJS) \
		$(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tests/sim: $(SIM_OBJS) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

tests: all $(UNIT_BINS) $(if $(SIM_SRCS),$(BUILD)/tests/sim)

# The README's commands build in parallel unless the caller chose -j.
PARJOBS = $(if $(findstring j,$(MAKEFLAGS)),,-j2)

# The README's test command: dependencies, build, every suite.
check:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory $(PARJOBS) tests
	@BUILD=$(BUILD) tests/run.sh

# The suites with threads of their own (the log's worker, direct writes,
# the apply thread) under ThreadSanitizer; a report fails the run.
TSAN_TESTS := test_log test_node
check-tsan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 \
		SANFLAGS=-fsanitize=thread $(TSAN_TESTS:%=build-tsan/tests/%)
	@for t in $(TSAN_TESTS); do \
		CK_FORK=no TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/$$t \
			>build-tsan/$$t.log 2>&1 && echo "tsan/$$t ok" || \
			{ echo "tsan/$$t FAILED (build-tsan/$$t.log)"; \
			tail -40 build-tsan/$$t.log; exit 1; }; \
	done

check-asan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 tests
	@BUILD=build-asan SAN=1 tests/run.sh

SEEDS ?= 10000
sim: tests
	$(BUILD)/tests/sim --seeds $(SEEDS)

cluster:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory $(PARJOBS) all
	@BUILD=$(BUILD) N=$(N) scripts/cluster.sh start

# jepsen-lite: a 2-minute random fault schedule on 5 nodes by default;
# T=<test> (or T=all) for named tests, TIME=s SEED=n NODES=n
# NEMESES=kind,... to change it (see jepsen-lite/README.md).
.PHONY: jepsen
jepsen: all
	jepsen-lite/run $(or $(T),random) --kvd $(BUILD)/bin/kvd \
		$(if $(TIME),--time $(TIME),$(if $(T),,--time 120)) \
		$(if $(SEED),--seed $(SEED)) $(if $(NODES),--nodes $(NODES)) \
		$(if $(NEMESES),--nemeses $(NEMESES))

cluster-stop:
	@BUILD=$(BUILD) scripts/cluster.sh stop

cluster-wipe:
	@BUILD=$(BUILD) scripts/cluster.sh wipe

# PREFIX is what the installed files refer to (pkg-config file); DESTDIR
# only stages them elsewhere, for packaging.
MAN_PAGES := $(wildcard docs/man/*.1)
# Paths under PREFIX are written relative to ${prefix} in libraft.pc, so
# that pkg-config --define-prefix can relocate an unpacked tree.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
# Deliberately broken kvd builds that jepsen-lite must catch:
# build/bugs/kvd-local-reads and build/bugs/kvd-early-ack; and
# build/bugs/kvd-faults, the correct kvd with the transport's fault hooks
# (message reordering and duplication from the environment).
kvd-bugs:
	@$(MAKE) --no-print-directory BUILD=build-bug-local-reads \
		EXTRA_CPPFLAGS=-DKVD_BUG_LOCAL_READS build-bug-local-reads/bin/kvd
	@$(MAKE) --no-print-directory BUILD=build-bug-early-ack \
		EXTRA_CPPFLAGS=-DKVD_BUG_EARLY_ACK build-bug-early-ack/bin/kvd
	@$(MAKE) --no-print-directory BUILD=build-faults \
		EXTRA_CPPFLAGS=-DRNET_FAULT_HOOKS build-faults/bin/kvd
	@mkdir -p $(BUILD)/bugs
	cp build-bug-local-reads/bin/kvd $(BUILD)/bugs/kvd-local-reads
	cp build-bug-early-ack/bin/kvd $(BUILD)/bugs/kvd-early-ack
	cp build-faults/bin/kvd $(BUILD)/bugs/kvd-faults

install: all
	install -d $(DESTDIR)$(INCLUDEDIR)/libraft $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 lib/include/libraft/*.h $(DESTDIR)$(INCLUDEDIR)/libraft
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)
	ln -sf libraft.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libraft.so.$(SOVERSION)
	ln -sf libraft.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libraft.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' \
		-e 's|@VERSION@|$(VERSION)|g' \
		lib/libraft.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libraft.pc
ifneq ($(PROGRAMS),)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)
endif
ifneq ($(MAN_PAGES),)
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1
endif

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/libraft
	rm -f $(DESTDIR)$(LIBDIR)/libraft.a $(DESTDIR)$(LIBDIR)/libraft.so \
		$(DESTDIR)$(LIBDIR)/libraft.so.$(SOVERSION) \
		$(DESTDIR)$(LIBDIR)/libraft.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/pkgconfig/libraft.pc \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN_PAGES)))

# The API reference; doxygen is optional, installed here when missing. Any
# warning (an undocumented public declaration) fails the run; DOCS_STRICT=0
# still writes the pages.
DOCS_STRICT ?= 1
docs:
	@command -v doxygen >/dev/null || { \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q \
			--no-install-recommends doxygen; }
	@mkdir -p $(BUILD)/docs
	(cat Doxyfile; echo "OUTPUT_DIRECTORY = $(BUILD)/docs"; \
		echo "PROJECT_NUMBER = $(VERSION)"; \
		[ "$(DOCS_STRICT)" = 1 ] || echo "WARN_AS_ERROR = NO") | doxygen -
	@echo "API reference: $(BUILD)/docs/html/index.html"

fmt:
	clang-format -i $$(find lib server cli tests examples -name '*.[ch]')

bench: tests
	@scripts/bench.sh

bench-core: $(BUILD)/tests/sim
	$(BUILD)/tests/sim --bench

mutants:
	@BUILD=$(BUILD) SAN=$(SAN) tests/sim/mutants.sh

# kvd against etcd on this machine; about 10 minutes with REPS=2.
bench-compare:
	@BUILD=$(BUILD) scripts/bench-compare.sh

# State machine apply throughput (bench/kv_apply.c).
$(BUILD)/bench/kv_apply: $(BUILD)/obj/bench/kv_apply.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

bench-kv: $(BUILD)/bench/kv_apply
	$(BUILD)/bench/kv_apply

# Failover time of an in-process three-node cluster (bench/node_failover.c).
$(BUILD)/bench/node_failover: $(BUILD)/obj/bench/node_failover.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

bench-node: $(BUILD)/bench/node_failover
	$(BUILD)/bench/node_failover

# The durable log's benchmark; BENCH_DIR must be on a real disk (not tmpfs).
BENCH_DIR ?= /var/tmp
BENCH_SECONDS ?= 3
$(BUILD)/bench/log_bench: $(BUILD)/obj/bench/log_bench.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

bench-log: $(BUILD)/bench/log_bench
	$(BUILD)/bench/log_bench $(BENCH_DIR) $(BENCH_SECONDS)

clean:
	rm -rf build build-asan build-tsan build-bug-local-reads build-bug-early-ack build-faults

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
