// swift-tools-version:6.0
import PackageDescription

// Layers (each arrow is the only direction a dependency may point):
//   ai-shell (executable) -> AIShellCLI -> BackupCore -> BackupEngines / BackupPipeline / BackupCloud
//   / BackupNotify; BackupCloud (S3 over async-http-client) -> BackupStorage (the blob-store protocol,
//   local disk); all -> BackupModel -> C shims (CSQLite, CLibPQ, CMariaDB, CZlib, CDeflate, CBZip2,
//   CZstd, CXXHash, CMalloc, COpenSSLSHA; BackupPipeline -> CSHA256Lanes, our multi-lane SHA-256;
//   BackupEngines -> CPGCopyBinary, our COPY text-to-binary rows)
// Only BackupNotify (the SMTP client) and BackupCloud (HTTP) use SwiftNIO.
let package = Package(
  name: "ai-shell",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "ai-shell", targets: ["ai-shell"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    // SMTP notifications (BackupNotify)
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    // cloud storage (BackupCloud): HTTP with streaming bodies for S3
    .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
  ],
  targets: [
    .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3"),
    .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib"),
    .systemLibrary(name: "CBZip2", path: "Sources/CBZip2"),
    .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd"),
    .systemLibrary(name: "CDeflate", path: "Sources/CDeflate", pkgConfig: "libdeflate"),
    .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq"),
    .systemLibrary(name: "CMariaDB", path: "Sources/CMariaDB", pkgConfig: "libmariadb"),
    .systemLibrary(name: "CXXHash", path: "Sources/CXXHash", pkgConfig: "libxxhash"),
    .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
    .systemLibrary(name: "COpenSSLSHA", path: "Sources/COpenSSLSHA", pkgConfig: "libcrypto"),
    // multi-lane SHA-256 (ours: no packaged library has one), compiled optimised in every
    // configuration so that debug builds check backups at a usable speed
    .target(name: "CSHA256Lanes", path: "Sources/CSHA256Lanes", cSettings: [.unsafeFlags(["-O3"])]),
    // COPY text rows to COPY binary rows for PostgreSQL restores (ours: libpq has no converter)
    .target(name: "CPGCopyBinary", path: "Sources/CPGCopyBinary", cSettings: [.unsafeFlags(["-O3"])]),
    .target(
      name: "BackupModel",
      dependencies: ["CXXHash", "CMalloc", "COpenSSLSHA"]
    ),
    .target(
      name: "BackupPipeline",
      dependencies: [
        "BackupModel", "CZlib", "CDeflate", "CBZip2", "CZstd", "CSHA256Lanes",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "_CryptoExtras", package: "swift-crypto"),
      ]
    ),
    .target(
      name: "BackupEngines",
      dependencies: [
        "BackupModel", "CSQLite", "CLibPQ", "CMariaDB", "CPGCopyBinary",
        .product(name: "Crypto", package: "swift-crypto"),
      ]
    ),
    .target(
      name: "BackupStorage",
      dependencies: ["BackupModel", "CMalloc"]
    ),
    // SMTP notifications over SwiftNIO + swift-nio-ssl
    .target(
      name: "BackupNotify",
      dependencies: [
        "BackupModel",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    .target(
      name: "BackupCloud",
      dependencies: [
        "BackupModel", "BackupStorage", "CDeflate", .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
      ]
    ),
    .target(
      name: "BackupCore",
      dependencies: [
        "BackupModel", "BackupPipeline", "BackupEngines", "BackupStorage", "BackupNotify", "BackupCloud",
        .product(name: "Logging", package: "swift-log"),
        // webhooks (the same HTTP client as BackupCloud's S3)
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
      ]
    ),
    .target(
      name: "AIShellCLI",
      dependencies: [
        "BackupCore", "BackupModel",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .executableTarget(name: "ai-shell", dependencies: ["AIShellCLI", "BackupModel"]),
    // scripts/bench.sh only: our age encryption over a file, timed against the age CLI
    .executableTarget(
      name: "age-throughput", dependencies: ["BackupModel", "BackupPipeline", "BackupStorage"]),
    .target(
      name: "TestSupport",
      dependencies: ["BackupModel", "BackupEngines", "CSQLite"],
      path: "Tests/TestSupport"
    ),
    .testTarget(
      name: "BackupPipelineTests", dependencies: ["BackupPipeline", "BackupStorage", "TestSupport", "CZlib"],
      exclude: ["Resources"]  // the age CCTV vectors, read through #filePath
    ),
    .testTarget(name: "BackupEnginesTests", dependencies: ["BackupEngines", "TestSupport"]),
    .testTarget(name: "BackupCoreTests", dependencies: ["BackupCore", "TestSupport"]),
    .testTarget(name: "PostgresTests", dependencies: ["BackupEngines", "BackupCore", "TestSupport"]),
    .testTarget(
      name: "MariaDBTests", dependencies: ["ai-shell", "BackupEngines", "BackupCore", "TestSupport"]),
    .testTarget(name: "BackupNotifyTests", dependencies: ["BackupNotify", "TestSupport"]),
    .testTarget(
      name: "BackupCloudTests",
      dependencies: [
        "BackupCloud", "BackupStorage", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
      ]),
    .testTarget(name: "EndToEndTests", dependencies: ["ai-shell", "TestSupport"]),
  ],
  swiftLanguageModes: [.v6]
)
