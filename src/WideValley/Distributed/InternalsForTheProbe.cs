using System.Runtime.CompilerServices;

// The MPI test program (tests/WideValley.Distributed.Probe) lowers MpiCollectives.MaxElementsPerCall to exercise the
// splitting of large buffers on small ones. The core project file lists the other friends.
[assembly: InternalsVisibleTo("WideValley.Distributed.Probe")]
