// Tests share libtorch's global random generator (initialisation, dropout) and its thread pool. Run in parallel,
// one test's manual_seed lands in the middle of another's run, and "bit-identical" checks fail at random.
[assembly: CollectionBehavior(CollectionBehavior.CollectionPerAssembly)]
