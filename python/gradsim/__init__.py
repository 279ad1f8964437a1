"""gradsim's traces in Python: read them, view them as pandas DataFrames, plot them.

    import gradsim
    header, sims = gradsim.read("traces.pb")          # sims: an iterator of SimTrace
    layers = gradsim.layers_frame("traces.pb")         # one row per simulation x layer
    summary = gradsim.sims_frame("traces.pb")          # one row per simulation
    spectra = gradsim.spectra_frame("traces.pb")       # one row per Jacobian spectrum
    evals = gradsim.evaluations_frame("traces.pb")     # one row per held-out evaluation (training)
    gradsim.plot.all_figures("traces.pb", "figures/")  # PNG and SVG

The message classes (gradsim.gradsim_pb2) are generated from proto/gradsim.proto.
"""
from .traces import CorruptTraces, Traces, read
from .frames import configuration_of, evaluations_frame, layers_frame, sims_frame, spectra_frame, verdict

__all__ = ["read", "Traces", "CorruptTraces", "layers_frame", "sims_frame", "spectra_frame", "evaluations_frame",
           "configuration_of", "verdict"]
__version__ = "0.5.1"
