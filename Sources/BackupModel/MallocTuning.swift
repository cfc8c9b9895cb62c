#if canImport(Glibc)
  import CMalloc
#endif

/// Process-wide allocator settings for the executables, applied once at start-up.
///
/// glibc returns freed memory at the top of the heap to the kernel as soon as more than 128 KiB
/// is free (M_TRIM_THRESHOLD). The streaming pipeline frees and re-allocates buffers of about
/// that size for every chunk (swift-crypto's ChaChaPoly allocates each sealed box), so with the
/// default every 64 KiB age chunk faulted its pages in afresh: 144,000 minor page faults for a
/// 500 MiB file, and encryption spent more time in the kernel than in ChaCha20-Poly1305.
/// Keeping up to 32 MiB of free heap removes those faults (scripts/bench.sh measures it); peak
/// RSS stays bounded by the pipeline's buffers.
public enum MallocTuning {
  public static func apply() {
    #if canImport(Glibc)
      _ = mallopt(M_TRIM_THRESHOLD, 32 << 20)
    #endif
  }
}
