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
///
/// Likewise glibc maps every allocation of 128 KiB or more with its own mmap and unmaps it on
/// free, so each 1 MiB member, compressed member and hashing-lane buffer was faulted in and
/// zeroed afresh: a third of a PostgreSQL create's system time. Buffers up to 2 MiB now come from
/// the heap and are reused; bigger ones (S3 parts, which S3Upload reuses itself, download
/// windows) are still mapped alone. Measured: no change in peak RSS.
public enum MallocTuning {
  public static func apply() {
    #if canImport(Glibc)
      _ = mallopt(M_TRIM_THRESHOLD, 32 << 20)
      _ = mallopt(M_MMAP_THRESHOLD, 2 << 20)
    #endif
  }
}
