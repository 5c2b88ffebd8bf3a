// Which bf16 kernel runs: what the build variant compiled, what the CPU has (CPUID), what the
// OS saves on a context switch (XCR0) and, for AMX, what Linux lets this process use
// (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA: without it the first tile instruction faults).
// Decided once, thread-safely (a function-local static), then cached.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "fastmlp/bf16_gemm.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FASTMLP_BF16_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

// The bf16 kernels are compiled into the avx512 variant only (see CMakeLists.txt).
#if defined(FASTMLP_BF16_X86) && defined(__AVX512F__) && defined(__AVX512BW__)
#define FASTMLP_HAVE_BF16_KERNELS 1
#endif

namespace fastmlp {

namespace {

struct Decision {
  Bf16Kernel kernel = Bf16Kernel::none;
  std::string reason;
  bool invalid = false;      // FASTMLP_BF16_KERNEL holds an unknown value
  bool avx512_bf16 = false;  // usable here
  bool amx = false;          // usable here (permission granted)
  std::string avx512_bf16_reason, amx_reason;
};

#ifndef FASTMLP_HAVE_BF16_KERNELS
const char* variant_name() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "baseline";
#endif
}
#else
unsigned long long read_xcr0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

void probe(Decision& d) {
#ifndef FASTMLP_HAVE_BF16_KERNELS
  const std::string why = std::string("this build variant (") + variant_name() +
                          ") has no bf16 kernels: they are in the avx512 variant only";
  d.avx512_bf16_reason = d.amx_reason = why;
#else
  unsigned a = 0, b = 0, c = 0, e = 0;
  bool osxsave = false, avx512_os = false, amx_os = false;
  if (__get_cpuid(1, &a, &b, &c, &e)) osxsave = (c >> 27) & 1;
  if (osxsave) {
    const unsigned long long xcr0 = read_xcr0();
    avx512_os = (xcr0 & 0xe6) == 0xe6;               // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
    amx_os = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  }
  bool cpu_avx512_bf16 = false, cpu_amx = false, cpu_avx512bw = false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &e)) {
    cpu_avx512bw = ((b >> 16) & 1) && ((b >> 30) & 1);  // AVX512F, AVX512BW
    cpu_amx = ((e >> 24) & 1) && ((e >> 22) & 1);       // AMX-TILE, AMX-BF16
    if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &e)) cpu_avx512_bf16 = (a >> 5) & 1;
  }
  if (!cpu_avx512_bf16 || !cpu_avx512bw) {
    d.avx512_bf16_reason = "this CPU has no AVX512-BF16 instructions";
  } else if (!avx512_os) {
    d.avx512_bf16_reason = "the OS does not enable AVX-512 state (XCR0)";
  } else {
    d.avx512_bf16 = true;
  }
  if (!cpu_amx) {
    d.amx_reason = "this CPU has no AMX-BF16 tiles";
  } else if (!amx_os) {
    d.amx_reason = "the OS does not enable AMX tile state (XCR0)";
  } else if (!d.avx512_bf16) {
    d.amx_reason =
        "AMX is used with AVX-512 for packing, which is unavailable: " + d.avx512_bf16_reason;
  } else if (!bf16_detail::request_amx_permission()) {
    d.amx_reason = "the OS refused AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM)";
  } else {
    d.amx = true;
  }
#endif
}

Decision decide() {
  Decision d;
  probe(d);
  const char* env = std::getenv("FASTMLP_BF16_KERNEL");
  const std::string forced = env ? env : "";
  if (forced.empty() || forced == "auto") {
    if (d.amx) {
      d.kernel = Bf16Kernel::amx;
    } else if (d.avx512_bf16) {
      d.kernel = Bf16Kernel::avx512_bf16;
    } else {
      d.reason = d.avx512_bf16_reason;
    }
  } else if (forced == "amx") {
    d.kernel = d.amx ? Bf16Kernel::amx : Bf16Kernel::none;
    if (!d.amx) d.reason = "FASTMLP_BF16_KERNEL=amx, but " + d.amx_reason;
  } else if (forced == "avx512_bf16") {
    d.kernel = d.avx512_bf16 ? Bf16Kernel::avx512_bf16 : Bf16Kernel::none;
    if (!d.avx512_bf16) d.reason = "FASTMLP_BF16_KERNEL=avx512_bf16, but " + d.avx512_bf16_reason;
  } else if (forced == "none") {
    d.reason = "FASTMLP_BF16_KERNEL=none";
  } else {
    d.reason = "FASTMLP_BF16_KERNEL=" + forced + " is not one of amx, avx512_bf16, none, auto";
    d.invalid = true;
  }
  return d;
}

const Decision& decision() {
  static const Decision d = decide();
  return d;
}

}  // namespace

namespace bf16_detail {

bool request_amx_permission() {
#if defined(__linux__) && defined(FASTMLP_BF16_X86)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) == 0 &&
      (bitmask & (1ul << kXfeatureXtiledata))) {
    return true;
  }
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;  // AMX kernels are enabled on Linux only
#endif
}

}  // namespace bf16_detail

Bf16Kernel bf16_kernel() {
  const Decision& d = decision();
  if (d.invalid) throw std::invalid_argument(d.reason);
  return d.kernel;
}

bool bf16_kernel_available(Bf16Kernel kernel) {
  const Decision& d = decision();
  switch (kernel) {
    case Bf16Kernel::amx: return d.amx;
    case Bf16Kernel::avx512_bf16: return d.avx512_bf16;
    case Bf16Kernel::none: return false;
  }
  return false;
}

const char* bf16_kernel_name(Bf16Kernel kernel) {
  switch (kernel) {
    case Bf16Kernel::amx: return "amx";
    case Bf16Kernel::avx512_bf16: return "avx512_bf16";
    case Bf16Kernel::none: return "none";
  }
  return "none";
}

std::string bf16_unavailable_reason() { return decision().reason; }

std::string bf16_kernel_unavailable_reason(Bf16Kernel kernel) {
  const Decision& d = decision();
  switch (kernel) {
    case Bf16Kernel::amx: return d.amx ? "" : d.amx_reason;
    case Bf16Kernel::avx512_bf16: return d.avx512_bf16 ? "" : d.avx512_bf16_reason;
    case Bf16Kernel::none: return "no bf16 kernel was asked for";
  }
  return "";
}

}  // namespace fastmlp
