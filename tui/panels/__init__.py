"""The screens' panels: each draws one part of a screen from a state that measure/screen_states.py makes."""
